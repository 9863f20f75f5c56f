"""DARTS genotypes: the discrete cell architectures the search produces.

A genotype lists, for each intermediate node of the normal and the reduction
cell, two `(op_name, input_state_index)` pairs, plus the states concatenated
into the cell output. States 0 and 1 are the cell inputs; intermediate node i
is state i + 2 and may read states 0 .. i + 1.

Genotypes are read from the text form used by the papers and the reference
code (with a small tokenizer and recursive-descent parser, never `eval`), from
JSON, from the built-in `ZOO`, or from a work directory.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from darts_jax import files
from darts_jax.errors import UserError

PRIMITIVES: tuple[str, ...] = (
    'none',
    'max_pool_3x3',
    'avg_pool_3x3',
    'skip_connect',
    'sep_conv_3x3',
    'sep_conv_5x5',
    'dil_conv_3x3',
    'dil_conv_5x5',
)

FIELDS: tuple[str, ...] = ('normal', 'normal_concat', 'reduce', 'reduce_concat')

EXPECTED_FORM = (
    "expected form: Genotype(normal=[('op', input), ...], "
    "normal_concat=range(2, 6), reduce=[...], reduce_concat=range(2, 6))")

GENOTYPE_JSON = 'genotype.json'
GENOTYPE_TXT = 'genotype.txt'

_OP_NAME_RE = re.compile(r'[A-Za-z_][A-Za-z0-9_]*\Z')


class GenotypeError(UserError):
  """A malformed genotype (text, JSON), an unknown zoo name or a bad file."""


class Genotype(NamedTuple):
  """A discrete DARTS architecture (normal and reduction cell)."""
  normal: tuple[tuple[str, int], ...]
  normal_concat: tuple[int, ...]
  reduce: tuple[tuple[str, int], ...]
  reduce_concat: tuple[int, ...]

  @property
  def steps(self) -> int:
    """Number of intermediate nodes per cell."""
    return len(self.normal) // 2


# ----------------------------------------------------------------------------
# Edges and discretization.


def num_edges(steps: int = 4) -> int:
  """Number of mixed-op edges in a search cell (14 for 4 steps)."""
  return sum(2 + i for i in range(steps))


def edge_list(steps: int = 4) -> list[tuple[int, int]]:
  """`(dst_node_index, src_state_index)` per edge, in alpha row order."""
  return [(i, j) for i in range(steps) for j in range(2 + i)]


def _softmax(logits: np.ndarray) -> np.ndarray:
  z = logits - logits.max(axis=-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(axis=-1, keepdims=True)


def _derive_cell(weights: np.ndarray, primitives: Sequence[str],
                 steps: int) -> tuple[tuple[str, int], ...]:
  """Keeps the 2 strongest incoming edges per node, each with its best op."""
  allowed = np.array([p != 'none' for p in primitives])
  masked = np.where(allowed[None, :], weights, -np.inf)
  gene = []
  start = 0
  for i in range(steps):
    block = masked[start:start + i + 2]
    strength = block.max(axis=1)
    # Stable sort on -strength: ties go to the lowest input index.
    for j in np.argsort(-strength, kind='stable')[:2]:
      k = int(np.argmax(block[j]))  # argmax returns the first maximum.
      gene.append((primitives[k], int(j)))
    start += i + 2
  return tuple(gene)


def derive_genotype(alphas_normal: Any,
                    alphas_reduce: Any,
                    primitives: Sequence[str],
                    steps: int = 4,
                    multiplier: int = 4) -> Genotype:
  """Discretizes architecture logits into a genotype (the DARTS rule).

  Args:
    alphas_normal: pre-softmax logits `[num_edges(steps), len(primitives)]`
      (numpy or jax array), rows in `edge_list(steps)` order.
    alphas_reduce: same for the reduction cell.
    primitives: op name per column; a 'none' column is never chosen.
    steps: intermediate nodes per cell.
    multiplier: how many of the last nodes the cell output concatenates.

  Returns:
    The genotype: per node the 2 incoming edges with the largest non-'none'
    softmax weight (strongest first), each with its argmax non-'none' op.
    Ties go to the lowest index.
  """
  primitives = tuple(primitives)
  if not any(p != 'none' for p in primitives):
    raise GenotypeError(
        f'cannot derive a genotype from primitives {list(primitives)}: '
        "at least one op other than 'none' is needed")
  if not 1 <= multiplier <= steps:
    raise GenotypeError(
        f'multiplier must be between 1 and steps={steps}, got {multiplier}')
  shape = (num_edges(steps), len(primitives))
  cells = []
  for name, alphas in (('alphas_normal', alphas_normal),
                       ('alphas_reduce', alphas_reduce)):
    a = np.asarray(alphas, dtype=np.float64)
    if a.shape != shape:
      raise GenotypeError(
          f'{name} has shape {a.shape}, expected {shape} '
          f'(num_edges(steps={steps}), len(primitives))')
    if not np.all(np.isfinite(a)):
      raise GenotypeError(f'{name} contains NaN or inf; the search diverged')
    cells.append(_derive_cell(_softmax(a), primitives, steps))
  concat = tuple(range(2 + steps - multiplier, steps + 2))
  return Genotype(cells[0], concat, cells[1], concat)


# ----------------------------------------------------------------------------
# Validation.


def _is_int(x: Any) -> bool:
  return (isinstance(x, (int, np.integer))
          and not isinstance(x, (bool, np.bool_)))


def _check_cell(field: str, pairs: Any, known_ops: Sequence[str] | None,
                locate: Callable[[str, int | None], str]
                ) -> tuple[tuple[str, int], ...]:
  if not isinstance(pairs, (list, tuple)):
    raise GenotypeError(
        f'invalid genotype: {field} must be a list of (op, input) pairs, got '
        f'{type(pairs).__name__}{locate(field, None)}')
  if not pairs or len(pairs) % 2:
    raise GenotypeError(
        f'invalid genotype: {field} has {len(pairs)} edges; each intermediate '
        f'node needs exactly 2 (op, input) pairs, so the count must be even '
        f'and positive{locate(field, None)}')
  out = []
  for idx, pair in enumerate(pairs):
    where = f'{field}[{idx}]'
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
      raise GenotypeError(
          f'invalid genotype: {where} must be an (op, input) pair, got '
          f'{pair!r}{locate(field, idx)}')
    op, src = pair
    if not isinstance(op, str) or not _OP_NAME_RE.match(op):
      raise GenotypeError(
          f'invalid genotype: {where} op name must be an identifier string '
          f'like "sep_conv_3x3", got {op!r}{locate(field, idx)}')
    if known_ops is not None and op not in known_ops:
      raise GenotypeError(
          f'invalid genotype: unknown op {op!r} in {where}'
          f'{locate(field, idx)}; known ops: {", ".join(known_ops)}')
    node = idx // 2
    if not _is_int(src) or not 0 <= src < node + 2:
      raise GenotypeError(
          f'invalid genotype: {where} = {(op, src)!r}: input must be an '
          f'integer in 0..{node + 1} (node {node} may read the 2 cell inputs '
          f'and earlier nodes){locate(field, idx)}')
    out.append((op, int(src)))
  return tuple(out)


def _check_concat(field: str, concat: Any, steps: int,
                  locate: Callable[[str, int | None], str]) -> tuple[int, ...]:
  if isinstance(concat, range):
    concat = list(concat)
  if not isinstance(concat, (list, tuple)) or not concat:
    raise GenotypeError(
        f'invalid genotype: {field} must be a non-empty list of node states or '
        f'range(start, stop), got {concat!r}{locate(field, None)}')
  lo, hi = 2, steps + 2
  for c in concat:
    if not _is_int(c) or not lo <= c < hi:
      raise GenotypeError(
          f'invalid genotype: {field} entry {c!r} is not an intermediate node '
          f'state; with {steps} nodes use states {lo}..{hi - 1}, e.g. '
          f'range({lo}, {hi}){locate(field, None)}')
  if len(set(int(c) for c in concat)) != len(concat):
    raise GenotypeError(
        f'invalid genotype: {field} {list(concat)} repeats a state'
        f'{locate(field, None)}')
  return tuple(int(c) for c in concat)


def _no_location(field: str, idx: int | None) -> str:
  del field, idx
  return ''


def _validate_fields(
    values: dict[str, Any],
    known_ops: Sequence[str] | None,
    locate: Callable[[str, int | None], str] = _no_location) -> Genotype:
  normal = _check_cell('normal', values['normal'], known_ops, locate)
  reduce = _check_cell('reduce', values['reduce'], known_ops, locate)
  if len(normal) != len(reduce):
    raise GenotypeError(
        f'invalid genotype: normal has {len(normal) // 2} nodes but reduce has '
        f'{len(reduce) // 2}; both cells need the same number of nodes'
        f'{locate("reduce", None)}')
  steps = len(normal) // 2
  return Genotype(
      normal,
      _check_concat('normal_concat', values['normal_concat'], steps, locate),
      reduce,
      _check_concat('reduce_concat', values['reduce_concat'], steps, locate))


def validate_genotype(g: Genotype,
                      known_ops: Sequence[str] | None = None) -> Genotype:
  """Checks a genotype built in code; returns it normalized to tuples."""
  if not isinstance(g, tuple) or len(g) != 4:
    raise GenotypeError(f'expected a Genotype, got {type(g).__name__}')
  return _validate_fields(dict(zip(FIELDS, g)), known_ops)


# ----------------------------------------------------------------------------
# Text form: tokenizer and recursive-descent parser.


class _Token(NamedTuple):
  kind: str  # 'name', 'int', 'str', 'punct', 'bad' or 'end'.
  value: Any
  pos: int


_TOKEN_RE = re.compile(r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<int>-?[0-9]+)
  | (?P<str>'[^'\n]*'|"[^"\n]*")
  | (?P<punct>[()\[\],=])
""", re.VERBOSE)

_CLOSER = {'(': ')', '[': ']'}


def _position(text: str, pos: int) -> str:
  if pos >= len(text):
    return 'at end of text'
  line = text.count('\n', 0, pos) + 1
  col = pos - (text.rfind('\n', 0, pos) + 1) + 1
  if '\n' in text:
    return f'at line {line}, column {col}'
  return f'at column {col}'


def _malformed(text: str, pos: int, what: str) -> GenotypeError:
  near = text[pos:pos + 24]
  where = f' {_position(text, pos)}' if pos < len(text) else ''
  found = f' (near {near!r})' if near.strip() else ''
  return GenotypeError(
      f'malformed genotype: {what}{where}{found}; {EXPECTED_FORM}')


def _tokenize(text: str) -> list[_Token]:
  tokens = []
  pos = 0
  while pos < len(text):
    m = _TOKEN_RE.match(text, pos)
    if m is None:
      # Reported only when the parser reaches it, so that earlier syntax
      # errors are reported first.
      ch = text[pos]
      what = ('unterminated string' if ch in '\'"'
              else f'unexpected character {ch!r}')
      tokens.append(_Token('bad', what, pos))
      break
    kind = m.lastgroup
    raw = m.group()
    if kind == 'int':
      tokens.append(_Token('int', int(raw), pos))
    elif kind == 'str':
      tokens.append(_Token('str', raw[1:-1], pos))
    elif kind != 'ws':
      tokens.append(_Token(kind, raw, pos))
    pos = m.end()
  tokens.append(_Token('end', None, len(text)))
  return tokens


def _describe(tok: _Token) -> str:
  if tok.kind == 'end':
    return 'the end of the text'
  if tok.kind == 'str':
    return f'string {tok.value!r}'
  return repr(str(tok.value))


class _Parser:
  """Recursive-descent parser over the token list of one genotype text."""

  def __init__(self, text: str):
    self.text = text
    self.tokens = _tokenize(text)
    self.i = 0
    # (field, pair index or None) -> source position, for validation errors.
    self.positions: dict[tuple[str, int | None], int] = {}

  def peek(self, ahead: int = 0) -> _Token:
    return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

  def next(self) -> _Token:
    tok = self.peek()
    self.i = min(self.i + 1, len(self.tokens) - 1)
    return tok

  def error(self, tok: _Token, expected: str) -> GenotypeError:
    if tok.kind == 'bad':
      return _malformed(self.text, tok.pos, tok.value)
    return _malformed(self.text, tok.pos,
                      f'expected {expected}, found {_describe(tok)}')

  def punct(self, chars: str, expected: str | None = None) -> _Token:
    tok = self.next()
    if tok.kind != 'punct' or tok.value not in chars:
      raise self.error(tok, expected or ' or '.join(repr(c) for c in chars))
    return tok

  def is_punct(self, chars: str, ahead: int = 0) -> bool:
    tok = self.peek(ahead)
    return tok.kind == 'punct' and tok.value in chars

  def sequence(self, item: Callable[[int], Any], what: str) -> list[Any]:
    """`[item, ...]` or `(item, ...)` with an optional trailing comma."""
    closer = _CLOSER[self.punct('[(', f"'[' starting {what}").value]
    items = []
    while not self.is_punct(closer):
      items.append(item(len(items)))
      if self.is_punct(','):
        self.next()
      elif not self.is_punct(closer):
        raise self.error(self.peek(), f"',' or '{closer}' in {what}")
    self.next()
    return items

  def integer(self, what: str) -> int:
    tok = self.next()
    if tok.kind != 'int':
      raise self.error(tok, f'an integer {what}')
    return tok.value

  def pair(self, field: str, index: int) -> tuple[str, int]:
    self.positions[(field, index)] = self.peek().pos
    closer = _CLOSER[self.punct('([', f"'(' starting an (op, input) pair "
                                      f'in {field}').value]
    tok = self.next()
    if tok.kind == 'name':
      raise self.error(tok, f"a quoted op name like '{tok.value}'")
    if tok.kind != 'str':
      raise self.error(tok, f'a quoted op name in {field}')
    if not _OP_NAME_RE.match(tok.value):
      raise _malformed(self.text, tok.pos,
                       f'op name {tok.value!r} in {field} is not a valid name '
                       '(a missing closing quote?)')
    self.punct(',', f"',' after the op name in {field}")
    src = self.integer(f'input index in {field}')
    if self.is_punct(','):
      self.next()
    self.punct(closer, f"'{closer}' closing the ({tok.value!r}, {src}) pair")
    return (tok.value, src)

  def cell(self, field: str) -> list[tuple[str, int]]:
    return self.sequence(lambda index: self.pair(field, index),
                         f'the {field} edge list')

  def concat(self, field: str) -> list[int]:
    tok = self.peek()
    if tok.kind == 'name':
      if tok.value != 'range':
        raise self.error(tok, f'a list of node states or range(start, stop) '
                              f'for {field}')
      self.next()
      self.punct('(', "'(' after range")
      args = [self.integer('in range()')]
      while self.is_punct(','):
        self.next()
        if self.is_punct(')'):
          break
        args.append(self.integer('in range()'))
      self.punct(')', "')' closing range(start, stop)")
      if len(args) > 2:
        raise _malformed(self.text, tok.pos,
                         f'{field} range takes (start, stop), got {len(args)} '
                         'arguments')
      r = range(*args)
      if not r:
        raise _malformed(self.text, tok.pos,
                         f'{field} range({", ".join(map(str, args))}) is empty')
      return list(r)
    return self.sequence(lambda _: self.integer(f'node state in {field}'),
                         f'the {field} list')

  def genotype(self) -> dict[str, Any]:
    if self.peek().kind == 'end':
      raise GenotypeError(f'malformed genotype: the text is empty; '
                          f'{EXPECTED_FORM}')
    # Optional leading "NAME =".
    if self.peek().kind == 'name' and self.is_punct('=', 1):
      self.i += 2
    tok = self.next()
    if tok.kind != 'name' or tok.value != 'Genotype':
      raise self.error(tok, "'Genotype('")
    self.punct('(', "'(' after Genotype")
    values: dict[str, Any] = {}
    positional = 0
    while not self.is_punct(')'):
      tok = self.peek()
      if tok.kind == 'name' and self.is_punct('=', 1):
        field = tok.value
        if field not in FIELDS:
          raise _malformed(self.text, tok.pos,
                           f'unknown keyword {field!r} (expected one of '
                           f'{", ".join(FIELDS)})')
        if field in values:
          raise _malformed(self.text, tok.pos, f'duplicate keyword {field!r}')
        self.i += 2
      else:
        if len(values) != positional:
          raise self.error(tok, 'a keyword argument (positional after keyword)')
        if positional >= len(FIELDS):
          raise self.error(tok, "')' (Genotype takes 4 fields)")
        field = FIELDS[positional]
        positional += 1
      self.positions[(field, None)] = self.peek().pos
      values[field] = (self.cell(field) if field in ('normal', 'reduce')
                       else self.concat(field))
      if self.is_punct(','):
        self.next()
      elif not self.is_punct(')'):
        raise self.error(self.peek(), "',' or ')' in Genotype(...)")
    close = self.next()
    missing = [f for f in FIELDS if f not in values]
    if missing:
      raise _malformed(self.text, close.pos,
                       f'missing {", ".join(missing)}')
    end = self.next()
    if end.kind != 'end':
      raise self.error(end, "end of text after 'Genotype(...)'")
    return values

  def locate(self, field: str, idx: int | None) -> str:
    pos = self.positions.get((field, idx), self.positions.get((field, None)))
    return '' if pos is None else f' ({_position(self.text, pos)})'


def parse_genotype(text: str, known_ops: Sequence[str] | None = None
                   ) -> Genotype:
  """Parses the reference text form `Genotype(normal=[...], ...)` safely.

  Accepts an optional leading `NAME =`, either quote style, lists or tuples,
  `range(a, b)` or lists for concat, any keyword order and free whitespace.
  Raises GenotypeError (one line, with the position) on any problem; op names
  are checked against `known_ops` when given.
  """
  if not isinstance(text, str):
    raise GenotypeError(
        f'genotype text must be a string, got {type(text).__name__}')
  parser = _Parser(text)
  values = parser.genotype()
  return _validate_fields(values, known_ops, parser.locate)


def _concat_text(concat: Sequence[int]) -> str:
  c = list(concat)
  if len(c) >= 2 and c == list(range(c[0], c[-1] + 1)):
    return f'range({c[0]}, {c[-1] + 1})'
  return '[' + ', '.join(str(x) for x in c) + ']'


def _cell_text(pairs: Sequence[tuple[str, int]]) -> str:
  return '[' + ', '.join(f'({op!r}, {src})' for op, src in pairs) + ']'


def genotype_to_text(g: Genotype) -> str:
  """The reference text form; `parse_genotype(genotype_to_text(g)) == g`."""
  g = validate_genotype(g)
  return (f'Genotype(normal={_cell_text(g.normal)}, '
          f'normal_concat={_concat_text(g.normal_concat)}, '
          f'reduce={_cell_text(g.reduce)}, '
          f'reduce_concat={_concat_text(g.reduce_concat)})')


# ----------------------------------------------------------------------------
# JSON form.


def genotype_to_json(g: Genotype) -> dict[str, Any]:
  """`{"normal": [["sep_conv_3x3", 0], ...], "normal_concat": [2, 3], ...}`."""
  g = validate_genotype(g)
  return {
      'normal': [[op, src] for op, src in g.normal],
      'normal_concat': list(g.normal_concat),
      'reduce': [[op, src] for op, src in g.reduce],
      'reduce_concat': list(g.reduce_concat),
  }


def genotype_from_json(d: dict[str, Any],
                       known_ops: Sequence[str] | None = None) -> Genotype:
  """Builds and validates a genotype from `genotype_to_json` output."""
  if not isinstance(d, dict):
    raise GenotypeError(
        f'invalid genotype JSON: expected an object with keys '
        f'{", ".join(FIELDS)}, got {type(d).__name__}')
  unknown = sorted(str(k) for k in d if k not in FIELDS)
  if unknown:
    raise GenotypeError(
        f'invalid genotype JSON: unknown key(s) {", ".join(unknown)}; '
        f'expected {", ".join(FIELDS)}')
  missing = [f for f in FIELDS if f not in d]
  if missing:
    raise GenotypeError(
        f'invalid genotype JSON: missing key(s) {", ".join(missing)}')
  return _validate_fields(d, known_ops)


# ----------------------------------------------------------------------------
# The zoo: published genotypes (op names and input indices as published).

_ZOO_TEXT: dict[str, str] = {
    # DARTS (first order), from the reference code.
    'DARTS_V1': (
        "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
        "('skip_connect', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), "
        "('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], "
        "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
        "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), "
        "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
        "('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])"),
    # DARTS (second order), the paper's CIFAR-10 cell.
    'DARTS_V2': (
        "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
        "('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), "
        "('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
        "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
        "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), "
        "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
        "('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"),
    # PC-DARTS (Xu et al., ICLR 2020), CIFAR-10.
    'PC_DARTS_cifar': (
        "Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0), "
        "('sep_conv_3x3', 0), ('dil_conv_3x3', 1), ('sep_conv_5x5', 0), "
        "('sep_conv_3x3', 1), ('avg_pool_3x3', 0), ('dil_conv_3x3', 1)], "
        "normal_concat=range(2, 6), reduce=[('sep_conv_5x5', 1), "
        "('max_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_5x5', 2), "
        "('sep_conv_3x3', 0), ('sep_conv_3x3', 3), ('sep_conv_3x3', 1), "
        "('sep_conv_3x3', 2)], reduce_concat=range(2, 6))"),
    # PC-DARTS searched directly on ImageNet (the paper's Table 3).
    'PC_DARTS_image': (
        "Genotype(normal=[('skip_connect', 1), ('sep_conv_3x3', 0), "
        "('sep_conv_3x3', 0), ('skip_connect', 1), ('sep_conv_3x3', 1), "
        "('sep_conv_3x3', 3), ('sep_conv_3x3', 1), ('dil_conv_5x5', 4)], "
        "normal_concat=range(2, 6), reduce=[('sep_conv_3x3', 0), "
        "('skip_connect', 1), ('dil_conv_5x5', 2), ('max_pool_3x3', 1), "
        "('sep_conv_3x3', 2), ('sep_conv_3x3', 1), ('sep_conv_5x5', 0), "
        "('sep_conv_3x3', 3)], reduce_concat=range(2, 6))"),
    # P-DARTS (Chen et al., ICCV 2019), CIFAR-10.
    'PDARTS': (
        "Genotype(normal=[('skip_connect', 0), ('dil_conv_3x3', 1), "
        "('skip_connect', 0),('sep_conv_3x3', 1), ('sep_conv_3x3', 1), "
        "('sep_conv_3x3', 3), ('sep_conv_3x3',0), ('dil_conv_5x5', 4)], "
        "normal_concat=range(2, 6), reduce=[('avg_pool_3x3', 0), "
        "('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('dil_conv_5x5', 2), "
        "('max_pool_3x3', 0), ('dil_conv_3x3', 1), ('dil_conv_3x3', 1), "
        "('dil_conv_5x5', 3)], reduce_concat=range(2, 6))"),
    # GDAS (Dong & Yang, CVPR 2019), CIFAR-10: AutoDL-Projects'
    # lib/nas_infer_model/DXYs/genotypes.py GDAS_V1 (its pairs per node, flattened).
    'GDAS_V1': (
        "Genotype(normal=[('skip_connect', 0), ('skip_connect', 1), "
        "('skip_connect', 0), ('sep_conv_5x5', 2), ('sep_conv_3x3', 3), "
        "('skip_connect', 0), ('sep_conv_5x5', 4), ('sep_conv_3x3', 3)], "
        "normal_concat=[2, 3, 4, 5], reduce=[('sep_conv_5x5', 0), "
        "('sep_conv_3x3', 1), ('sep_conv_5x5', 2), ('sep_conv_5x5', 1), "
        "('dil_conv_5x5', 2), ('sep_conv_3x3', 1), ('sep_conv_5x5', 0), "
        "('sep_conv_5x5', 1)], reduce_concat=[2, 3, 4, 5])"),
    # DrNAS (Chen et al., ICLR 2021), searched on CIFAR-10 and on ImageNet: the
    # official code's DARTS-space/genotypes.py.
    'DrNAS_cifar10': (
        "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_5x5', 1), "
        "('sep_conv_3x3', 1), ('sep_conv_3x3', 2), ('skip_connect', 0), "
        "('sep_conv_3x3', 1), ('sep_conv_3x3', 2), ('dil_conv_5x5', 3)], "
        "normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), "
        "('sep_conv_5x5', 1), ('dil_conv_5x5', 2), ('sep_conv_5x5', 1), "
        "('sep_conv_5x5', 1), ('dil_conv_5x5', 3), ('skip_connect', 4), "
        "('sep_conv_5x5', 1)], reduce_concat=range(2, 6))"),
    'DrNAS_imagenet': (
        "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
        "('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
        "('dil_conv_3x3', 3), ('skip_connect', 0), ('sep_conv_3x3', 1)], "
        "normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), "
        "('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2), "
        "('sep_conv_3x3', 0), ('sep_conv_3x3', 2), ('sep_conv_3x3', 3), "
        "('sep_conv_3x3', 1)], reduce_concat=range(2, 6))"),
    # NASNet-A (Zoph et al., 2018) as the DARTS paper's baseline: 5 nodes,
    # uses sep_conv_7x7, outside the DARTS search space.
    'NASNet': (
        "Genotype(normal=[('sep_conv_5x5', 1), ('sep_conv_3x3', 0), "
        "('sep_conv_5x5', 0), ('sep_conv_3x3', 0), ('avg_pool_3x3', 1), "
        "('skip_connect', 0), ('avg_pool_3x3', 0), ('avg_pool_3x3', 0), "
        "('sep_conv_3x3', 1), ('skip_connect', 1)], "
        "normal_concat=[2, 3, 4, 5, 6], reduce=[('sep_conv_5x5', 1), "
        "('sep_conv_7x7', 0), ('max_pool_3x3', 1), ('sep_conv_7x7', 0), "
        "('avg_pool_3x3', 1), ('sep_conv_5x5', 0), ('skip_connect', 3), "
        "('avg_pool_3x3', 2), ('sep_conv_3x3', 2), ('max_pool_3x3', 1)], "
        "reduce_concat=[4, 5, 6])"),
    # AmoebaNet-A (Real et al., 2019) as the DARTS paper's baseline: 5 nodes,
    # uses sep_conv_7x7 and conv_7x1_1x7.
    'AmoebaNet': (
        "Genotype(normal=[('avg_pool_3x3', 0), ('max_pool_3x3', 1), "
        "('sep_conv_3x3', 0), ('sep_conv_5x5', 2), ('sep_conv_3x3', 0), "
        "('avg_pool_3x3', 3), ('sep_conv_3x3', 1), ('skip_connect', 1), "
        "('skip_connect', 0), ('avg_pool_3x3', 1)], "
        "normal_concat=[4, 5, 6], reduce=[('avg_pool_3x3', 0), "
        "('sep_conv_3x3', 1), ('max_pool_3x3', 0), ('sep_conv_7x7', 2), "
        "('sep_conv_7x7', 0), ('avg_pool_3x3', 1), ('max_pool_3x3', 0), "
        "('max_pool_3x3', 1), ('conv_7x1_1x7', 0), ('sep_conv_3x3', 5)], "
        "reduce_concat=[3, 4, 6])"),
}

ZOO: dict[str, Genotype] = {
    name: parse_genotype(text) for name, text in _ZOO_TEXT.items()}
ZOO['DARTS'] = ZOO['DARTS_V2']

DARTS_V1 = ZOO['DARTS_V1']
DARTS_V2 = ZOO['DARTS_V2']
DARTS = ZOO['DARTS']
PC_DARTS_cifar = ZOO['PC_DARTS_cifar']
PC_DARTS_image = ZOO['PC_DARTS_image']
PDARTS = ZOO['PDARTS']
NASNet = ZOO['NASNet']
AmoebaNet = ZOO['AmoebaNet']
GDAS_V1 = ZOO['GDAS_V1']
DrNAS_cifar10 = ZOO['DrNAS_cifar10']
DrNAS_imagenet = ZOO['DrNAS_imagenet']


# ----------------------------------------------------------------------------
# Loading and saving.


def _accepted_forms() -> str:
  return (f'pass a zoo name ({", ".join(ZOO)}), genotype text like '
          f"\"Genotype(normal=[('sep_conv_3x3', 0), ...], ...)\", a .json or "
          f'.txt file, or a workdir containing {GENOTYPE_JSON}')


def _from_json_value(value: Any, known_ops: Sequence[str] | None) -> Genotype:
  if isinstance(value, dict) and 'genotype' in value:
    value = value['genotype']
  if isinstance(value, str):
    return parse_genotype(value, known_ops)
  return genotype_from_json(value, known_ops)


def _load_file(path: str, known_ops: Sequence[str] | None) -> Genotype:
  try:
    with open(path, encoding='utf-8') as f:
      content = f.read()
  except (OSError, UnicodeDecodeError) as e:
    raise GenotypeError(f'cannot read genotype file {path}: {e}') from e
  try:
    if path.lower().endswith('.json') or content.lstrip().startswith('{'):
      try:
        value = json.loads(content)
      except json.JSONDecodeError as e:
        raise GenotypeError(f'invalid JSON: {e}') from e
      return _from_json_value(value, known_ops)
    return parse_genotype(content.strip(), known_ops)
  except GenotypeError as e:
    raise GenotypeError(f'{path}: {e}') from e


def load_genotype(spec: str | os.PathLike[str],
                  known_ops: Sequence[str] | None = None) -> Genotype:
  """Loads a genotype from a zoo name, text, a file or a workdir.

  Args:
    spec: a `ZOO` name (case-insensitive), genotype text, a path to a .json
      file (`genotype_to_json` form or `{"genotype": ...}`), a path to a text
      file with genotype text, or a directory holding `genotype.json` (or
      `genotype.txt`), as written by `save_genotype`.
    known_ops: if given, every op must be one of these.

  Returns:
    The validated genotype.
  """
  if isinstance(spec, Genotype):
    return validate_genotype(spec, known_ops)
  if isinstance(spec, os.PathLike):
    spec = os.fspath(spec)
  if not isinstance(spec, str):
    raise GenotypeError(
        f'genotype spec must be a string, got {type(spec).__name__}; '
        f'{_accepted_forms()}')
  s = spec.strip()
  if not s:
    raise GenotypeError(f'empty genotype spec; {_accepted_forms()}')
  by_lower = {k.lower(): k for k in ZOO}
  if s in ZOO or s.lower() in by_lower:
    name = s if s in ZOO else by_lower[s.lower()]
    try:
      return validate_genotype(ZOO[name], known_ops)
    except GenotypeError as e:
      raise GenotypeError(f'zoo genotype {name}: {e}') from e
  if os.path.isdir(s):
    for fname in (GENOTYPE_JSON, GENOTYPE_TXT):
      path = os.path.join(s, fname)
      if os.path.isfile(path):
        return _load_file(path, known_ops)
    raise GenotypeError(
        f'directory {s} has no {GENOTYPE_JSON}; {_accepted_forms()}')
  if os.path.isfile(s):
    return _load_file(s, known_ops)
  if '(' in s or '[' in s or '=' in s:
    return parse_genotype(s, known_ops)
  raise GenotypeError(
      f'{s!r} is neither a zoo name nor an existing file or directory; '
      f'{_accepted_forms()}')


def _write_atomic(path: str, content: str) -> None:
  files.write_atomic(path, lambda f: f.write(content.encode('utf-8')))


def save_genotype(g: Genotype, directory: str | os.PathLike[str]) -> None:
  """Writes `genotype.json` and `genotype.txt` into `directory` atomically."""
  g = validate_genotype(g)
  directory = os.fspath(directory)
  os.makedirs(directory, exist_ok=True)
  d = genotype_to_json(g)
  body = ',\n'.join(f'  {json.dumps(k)}: {json.dumps(v)}' for k, v in d.items())
  _write_atomic(os.path.join(directory, GENOTYPE_JSON), '{\n' + body + '\n}\n')
  _write_atomic(os.path.join(directory, GENOTYPE_TXT),
                genotype_to_text(g) + '\n')

"""The text form of DARTS genotypes, as the papers and the reference code print them.

`Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=range(2, 6), reduce=[...],
reduce_concat=range(2, 6))`, read with a small tokenizer and recursive-descent parser
(never `eval`): one-line errors that say where the text is wrong.
"""

from __future__ import annotations

import re
from typing import Any, Callable, NamedTuple, Sequence

from darts_jax.spaces.darts.genotype import (EXPECTED_FORM, FIELDS, Genotype, GenotypeError,
                                             OP_NAME_RE, validate_fields, validate_genotype)

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
    if not OP_NAME_RE.match(tok.value):
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
  return validate_fields(values, known_ops, parser.locate)


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

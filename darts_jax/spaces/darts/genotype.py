"""DARTS genotypes: the discrete cell architectures the search produces.

A genotype lists, for each intermediate node of the normal and the reduction
cell, two `(op_name, input_state_index)` pairs, plus the states concatenated
into the cell output. States 0 and 1 are the cell inputs; intermediate node i
is state i + 2 and may read states 0 .. i + 1.

This module holds the type, the DARTS derivation rule, validation and the JSON
form; `genotype_text` reads and writes the papers' text form (never `eval`), `zoo`
holds the published genotypes and loads a genotype from any of its forms.
"""

from __future__ import annotations

import re
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

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

OP_NAME_RE = re.compile(r'[A-Za-z_][A-Za-z0-9_]*\Z')


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


def derive_from_weights(weights: dict[str, Any], primitives: Sequence[str], steps: int = 4,
                        multiplier: int = 4) -> Genotype:
  """Discretizes edge weights into a genotype (the DARTS rule).

  Args:
    weights: 'normal' and 'reduce' [num_edges(steps), len(primitives)] op weights
      (softmaxed alphas for DARTS), rows in `edge_list(steps)` order.
    primitives: op name per column; a 'none' column is never chosen.
    steps: intermediate nodes per cell.
    multiplier: how many of the last nodes the cell output concatenates.

  Returns:
    The genotype: per node the 2 incoming edges with the largest non-'none'
    weight (strongest first), each with its argmax non-'none' op. Ties go to the
    lowest index.
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
  for cell in ('normal', 'reduce'):
    w = np.asarray(weights[cell], dtype=np.float64)
    if w.shape != shape:
      raise GenotypeError(
          f'{cell} edge weights have shape {w.shape}, expected {shape} '
          f'(num_edges(steps={steps}), len(primitives))')
    if not np.all(np.isfinite(w)):
      raise GenotypeError(f'{cell} edge weights contain NaN or inf; the search diverged')
    cells.append(_derive_cell(w, primitives, steps))
  concat = tuple(range(2 + steps - multiplier, steps + 2))
  return Genotype(cells[0], concat, cells[1], concat)


def derive_genotype(alphas_normal: Any, alphas_reduce: Any, primitives: Sequence[str],
                    steps: int = 4, multiplier: int = 4) -> Genotype:
  """`derive_from_weights` of softmax(alphas): DARTS's discretization of its logits."""
  weights = {}
  for cell, alphas in (('normal', alphas_normal), ('reduce', alphas_reduce)):
    a = np.asarray(alphas, dtype=np.float64)
    weights[cell] = _softmax(a) if a.ndim == 2 and a.shape[-1] else a
  return derive_from_weights(weights, primitives, steps, multiplier)


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
    if not isinstance(op, str) or not OP_NAME_RE.match(op):
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


def validate_fields(
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
  return validate_fields(dict(zip(FIELDS, g)), known_ops)


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
  return validate_fields(d, known_ops)

"""The NAS-Bench-201 search space (Dong & Yang, ICLR 2020).

One cell type with 4 nodes: node 0 is the cell input, node i (1..3) sums one
op on every earlier node, so 6 edges; the cell output is node 3. Ops: none,
skip_connect, nor_conv_1x1, nor_conv_3x3 (ReLU-Conv-BN), avg_pool_3x3, so
5^6 = 15625 cells. The network: 3x3 stem conv to C=16 + BN, N=5 cells at C,
a ResNet basic block with stride 2 to 2C, N cells, a ResNet block to 4C, N
cells, BN-ReLU, global average pool, linear.

A cell is written as NAS-Bench-201's architecture string, node 1's inputs |
node 2's | node 3's, each `op~source`:

  |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|

This module holds the architecture type: the cell, its edges, arch strings, the
derivation and random cells. `networks` holds the search network and the network that
trains a cell from scratch, `benchmark` the optional look-up, `space` the plug-in.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, NamedTuple, Sequence

import numpy as np

from darts_jax.errors import UserError

PRIMITIVES = ('none', 'skip_connect', 'nor_conv_1x1', 'nor_conv_3x3', 'avg_pool_3x3')
NUM_NODES = 4  # Node 0 is the cell input.
ARCH_FILE = 'arch.txt'


class ArchError(UserError):
  """A malformed or invalid NAS-Bench-201 architecture string."""


class Arch(NamedTuple):
  """A NAS-Bench-201 cell: per node 1..3, the (op, source) of each incoming edge."""
  nodes: tuple[tuple[tuple[str, int], ...], ...]

  def __str__(self) -> str:
    return arch_to_string(self)


def edge_list(num_nodes: int = NUM_NODES) -> list[tuple[int, int]]:
  """(dst, src) per edge, in alpha row order (= arch string order): 1<-0, 2<-0, 2<-1, ..."""
  return [(i, j) for i in range(1, num_nodes) for j in range(i)]


def num_edges(num_nodes: int = NUM_NODES) -> int:
  return len(edge_list(num_nodes))


# ---------------------------------------------------------------------------
# Architecture strings.


def arch_to_string(arch: Arch) -> str:
  return '+'.join('|' + '|'.join(f'{op}~{src}' for op, src in node) + '|'
                  for node in arch.nodes)


_ENTRY_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)~(\d+)\Z')


def parse_arch(text: str, ops: Sequence[str] = PRIMITIVES,
               num_nodes: int = NUM_NODES) -> Arch:
  """Parses `|op~0|+|op~0|op~1|+...`; raises ArchError saying what is wrong and where."""
  if not isinstance(text, str):
    raise ArchError(f'a NAS-Bench-201 architecture string must be a str, got {type(text)}')
  example = ('e.g. |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+'
             '|skip_connect~0|nor_conv_3x3~1|skip_connect~2|')
  s = text.strip()
  parts = s.split('+')
  if len(parts) != num_nodes - 1:
    raise ArchError(f'{text!r}: expected {num_nodes - 1} node groups separated by "+", '
                    f'found {len(parts)} ({example})')
  nodes = []
  for i, part in enumerate(parts, start=1):
    if len(part) < 2 or not part.startswith('|') or not part.endswith('|'):
      raise ArchError(f'{text!r}: node {i}\'s group {part!r} must start and end with "|" '
                      f'({example})')
    entries = part[1:-1].split('|')
    if len(entries) != i:
      raise ArchError(f'{text!r}: node {i} must have {i} incoming edge(s) (sources 0..{i - 1}), '
                      f'found {len(entries)} in {part!r}')
    node = []
    for j, entry in enumerate(entries):
      m = _ENTRY_RE.match(entry)
      if not m:
        raise ArchError(f'{text!r}: node {i}, edge {j}: {entry!r} is not "op~source" '
                        f'(e.g. nor_conv_3x3~{j})')
      op, src = m.group(1), int(m.group(2))
      if op not in ops:
        raise ArchError(f'{text!r}: node {i}: unknown op {op!r}; NAS-Bench-201 ops are '
                        f'{list(ops)}')
      if src != j:
        raise ArchError(f'{text!r}: node {i}: edge {j} must come from node {j}, got ~{src} '
                        '(sources are listed in order 0..i-1)')
      node.append((op, src))
    nodes.append(tuple(node))
  return Arch(tuple(nodes))


def is_arch_string(spec: Any) -> bool:
  return isinstance(spec, str) and spec.strip().startswith('|')


def load_arch(spec: str) -> Arch:
  """An arch string, a file holding one, or a search workdir (its arch.txt)."""
  if is_arch_string(spec):
    return parse_arch(spec)
  path = os.path.join(spec, ARCH_FILE) if os.path.isdir(spec) else spec
  if not os.path.isfile(path):
    raise ArchError(f'{spec!r} is neither a NAS-Bench-201 arch string (|op~0|+...) nor a '
                    f'file or a workdir with {ARCH_FILE}')
  with open(path, encoding='utf-8') as f:
    return parse_arch(f.read())


def is_arch_spec(spec: Any) -> bool:
  """True for an arch string, or a file/workdir holding one (tells augment which network)."""
  if is_arch_string(spec):
    return True
  if not isinstance(spec, str) or not spec:
    return False
  path = os.path.join(spec, ARCH_FILE) if os.path.isdir(spec) else spec
  if not os.path.isfile(path):
    return False
  with open(path, encoding='utf-8') as f:
    return is_arch_string(f.read(4096))


def save_arch(arch: Arch, workdir: str) -> None:
  """arch.txt (the string), genotype.txt (same) and genotype.json ({'nb201_arch': ...})."""
  os.makedirs(workdir, exist_ok=True)
  text = arch_to_string(arch)
  for name, content in ((ARCH_FILE, text + '\n'), ('genotype.txt', text + '\n'),
                        ('genotype.json', json.dumps({'nb201_arch': text}) + '\n')):
    tmp = os.path.join(workdir, name + '.tmp')
    with open(tmp, 'w', encoding='utf-8') as f:
      f.write(content)
    os.replace(tmp, os.path.join(workdir, name))


def derive_arch(weights: Any, primitives: Sequence[str] = PRIMITIVES) -> Arch:
  """Argmax op per edge (including 'none', as NAS-Bench-201's own DARTS code does)."""
  w = np.asarray(weights, np.float64)
  if w.shape != (num_edges(), len(primitives)):
    raise ArchError(f'NAS-Bench-201 edge weights have shape {w.shape}, expected '
                    f'{(num_edges(), len(primitives))}')
  if not np.all(np.isfinite(w)):
    raise ArchError('NAS-Bench-201 edge weights contain NaN or inf; the search diverged')
  ops = [primitives[int(k)] for k in np.argmax(w, axis=-1)]
  return arch_from_ops(ops)


def arch_from_ops(ops: Sequence[str]) -> Arch:
  """The cell with `ops[e]` on edge e of `edge_list()`."""
  nodes, e = [], 0
  for i in range(1, NUM_NODES):
    nodes.append(tuple((ops[e + j], j) for j in range(i)))
    e += i
  return Arch(tuple(nodes))


def arch_ops(arch: Arch) -> list[str]:
  return [op for node in arch.nodes for op, _ in node]


def random_arch(seed: int, ops: Sequence[str] = PRIMITIVES) -> Arch:
  """Plain random sampling: a uniformly random op on each of the 6 edges."""
  rng = np.random.default_rng(seed)
  return arch_from_ops([ops[int(rng.integers(len(ops)))] for _ in range(num_edges())])

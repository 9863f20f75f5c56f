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

This module holds the space (ops, edges, arch strings, random cells), the
search network (mixed edges from `supernet.MixedEdges`, fed the same
`edge_weights` as the DARTS supernet, one [6, 5] array under 'normal'), the
network that trains a fixed cell from scratch (`augment.py` uses it when
config.genotype is an arch string) and the optional benchmark look-up.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from typing import Any, NamedTuple, Sequence

from absl import logging
import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from darts_jax import batch_norm
from darts_jax import conv
from darts_jax import initializers
from darts_jax import pooling
from darts_jax import search_ops
from darts_jax import supernet
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


# ---------------------------------------------------------------------------
# Ops (batched over the E edges that leave one node, as in search_ops).


class NorConv(nn.Module):
  """nor_conv_kxk: ReLU, kxk conv, BN, for E edges sharing one input.

  The E convolutions read the same input, so they run as one convolution with
  E * C_out output channels.
  """
  channels: int
  kernel_size: int
  stride: int
  num_edges: int
  affine: bool = False

  @nn.compact
  def __call__(self, x, train: bool):
    k, e, c = self.kernel_size, self.num_edges, self.channels
    kernel = self.param('kernel', initializers.kaiming_normal((0, 1, 2)),
                        (k, k, x.shape[-1], e * c))
    y = conv.conv2d(nn.relu(x), kernel, self.stride)
    y = jnp.moveaxis(y.reshape(y.shape[:-1] + (e, c)), -2, 0)
    return batch_norm.BatchNorm(self.affine)(y, train)


class AvgPool(nn.Module):
  """avg_pool_3x3 (padding 1, padded cells not counted), no BN: the same on every edge."""
  stride: int = 1

  @nn.compact
  def __call__(self, x, train: bool):
    del train
    return pooling.avg_pool_3x3(x, self.stride)[None]


# NAS-Bench-201's avg_pool_3x3 has no BN (the DARTS one has): its own registry name.
SEARCH_OP_NAMES = {'none': 'none', 'skip_connect': 'skip_connect',
                   'nor_conv_1x1': 'nor_conv_1x1', 'nor_conv_3x3': 'nor_conv_3x3',
                   'avg_pool_3x3': 'nb201_avg_pool_3x3'}
search_ops.register_search_op('nor_conv_1x1', lambda c, s, e, impl: NorConv(c, 1, s, e))
search_ops.register_search_op('nor_conv_3x3', lambda c, s, e, impl: NorConv(c, 3, s, e))
search_ops.register_search_op('nb201_avg_pool_3x3', lambda c, s, e, impl: AvgPool(s))


def check_primitives(primitives) -> tuple[str, ...]:
  primitives = tuple(primitives)
  unknown = [p for p in primitives if p not in SEARCH_OP_NAMES]
  if unknown or len(set(primitives)) != len(primitives) or not primitives:
    raise UserError(f'NAS-Bench-201 search ops must be distinct names from {list(PRIMITIVES)}, '
                    f'got {list(primitives)}')
  return primitives


# ---------------------------------------------------------------------------
# Networks.


class ConvBN(nn.Module):
  """[ReLU,] kxk conv, BN (affine)."""
  channels: int
  kernel_size: int = 3
  stride: int = 1
  relu: bool = True

  @nn.compact
  def __call__(self, x, train: bool):
    k = self.kernel_size
    kernel = self.param('kernel', initializers.kaiming_normal((0, 1, 2)), (k, k, x.shape[-1],
                                                                   self.channels))
    y = conv.conv2d(nn.relu(x) if self.relu else x, kernel, self.stride)
    return batch_norm.BatchNorm(affine=True)(y[None], train)[0]


class ResNetBlock(nn.Module):
  """NAS-Bench-201's reduction: ReLU-Conv3x3(s2)-BN, ReLU-Conv3x3-BN, plus a shortcut of
  2x2 average pooling and a 1x1 conv."""
  channels: int

  @nn.compact
  def __call__(self, x, train: bool):
    y = ConvBN(self.channels, 3, 2, name='conv_a')(x, train)
    y = ConvBN(self.channels, 3, 1, name='conv_b')(y, train)
    shortcut = nn.avg_pool(x, (2, 2), (2, 2))
    kernel = self.param('shortcut', initializers.kaiming_normal((0, 1, 2)),
                        (1, 1, x.shape[-1], self.channels))
    return y + conv.conv2d(shortcut, kernel)


def _edges_by_source() -> list[tuple[int, list[int]]]:
  rows = {}
  for row, (_, src) in enumerate(edge_list()):
    rows.setdefault(src, []).append(row)
  return sorted(rows.items())


class SearchCell(nn.Module):
  """Mixed edges; node i = sum over j < i of the mixed edge j -> i; output node 3."""
  primitives: Sequence[str]
  channels: int
  partial_channels: int = 1
  skip_unused_ops: bool = False
  unsampled_passthrough: bool = False  # GDAS: see supernet.MixedEdges.

  @nn.compact
  def __call__(self, x, weights, train: bool):
    impl_names = [SEARCH_OP_NAMES[p] for p in self.primitives]
    nodes = [x]
    partial = [0.] * NUM_NODES
    dst_of = [dst for dst, _ in edge_list()]
    for src, rows in _edges_by_source():
      if src >= 1:
        nodes.append(partial[src])
      out = supernet.MixedEdges(impl_names, self.channels, 1, len(rows),
                                partial_channels=self.partial_channels,
                                skip_unused_ops=self.skip_unused_ops,
                                unsampled_passthrough=self.unsampled_passthrough,
                                name=f'edges_from_{src}')(nodes[src], weights[jnp.array(rows)],
                                                          train)
      for e, row in enumerate(rows):
        partial[dst_of[row]] = partial[dst_of[row]] + out[e]
    return partial[NUM_NODES - 1]


class _Macro(nn.Module):
  """Stem, 3 stages of `cells_per_stage` cells, ResNet blocks between, BN-ReLU-GAP-linear."""
  num_classes: int
  init_channels: int = 16
  cells_per_stage: int = 5

  @nn.nowrap
  def stem_and_stages(self, x, train, make_cell):
    c = self.init_channels
    kernel = self.param('stem_conv', initializers.kaiming_normal((0, 1, 2)),
                        (3, 3, x.shape[-1], c))
    s = conv.conv2d(x, kernel)
    s = batch_norm.BatchNorm(affine=True, name='stem_bn')(s[None], train)[0]
    index = 0
    for stage in range(3):
      if stage > 0:
        c *= 2
        s = ResNetBlock(c, name=f'cell_{index}')(s, train)
        index += 1
      for _ in range(self.cells_per_stage):
        s = make_cell(c, f'cell_{index}')(s)
        index += 1
    s = nn.relu(batch_norm.BatchNorm(affine=True, name='last_bn')(s[None], train)[0])
    return nn.Dense(self.num_classes, kernel_init=initializers.lecun_normal,
                    bias_init=initializers.zeros, name='classifier')(jnp.mean(s, axis=(1, 2)))


class SearchNetwork(_Macro):
  """The NAS-Bench-201 supernet; edge_weights['normal'] is [6, len(primitives)]."""
  primitives: Sequence[str] = PRIMITIVES
  partial_channels: int = 1
  skip_unused_ops: bool = False
  unsampled_passthrough: bool = False

  @nn.compact
  def __call__(self, x, edge_weights, train: bool):
    weights = edge_weights['normal']
    return self.stem_and_stages(x, train, lambda c, name: (
        lambda s: SearchCell(self.primitives, c, self.partial_channels, self.skip_unused_ops,
                             self.unsampled_passthrough, name=name)(s, weights, train)))


class InferCell(nn.Module):
  """A fixed NAS-Bench-201 cell ('none' edges contribute nothing); affine BN."""
  arch: Arch
  channels: int

  @nn.compact
  def __call__(self, x, train: bool):
    nodes = [x]
    for i, node in enumerate(self.arch.nodes, start=1):
      total = None
      for op, src in node:
        y = _fixed_op(op, self.channels, f'edge_{i}_{src}')(nodes[src], train)
        if y is not None:
          total = y if total is None else total + y
      nodes.append(jnp.zeros_like(x) if total is None else total)
    return nodes[-1]


def _fixed_op(op: str, channels: int, name: str):
  if op == 'none':
    return lambda x, train: None
  if op == 'skip_connect':
    return lambda x, train: x
  if op == 'avg_pool_3x3':
    return lambda x, train: AvgPool(1, name=name)(x, train)[0]
  k = {'nor_conv_1x1': 1, 'nor_conv_3x3': 3}[op]
  return lambda x, train: NorConv(channels, k, 1, 1, affine=True, name=name)(x, train)[0]


class EvalNetwork(_Macro):
  """A fixed cell trained from scratch; returns (logits, None) like augment_net's networks.

  `drop_path_prob` is accepted and ignored (NAS-Bench-201 trains without it).
  """
  arch: Arch = None

  @nn.compact
  def __call__(self, x, train: bool = False, drop_path_prob: Any = None):
    del drop_path_prob
    logits = self.stem_and_stages(x, train, lambda c, name: (
        lambda s: InferCell(self.arch, c, name=name)(s, train)))
    return logits, None


def build_search_model(config, num_classes: int, partial_channels: int = 1,
                       skip_unused_ops: bool = False,
                       unsampled_passthrough: bool = False) -> SearchNetwork:
  primitives = check_primitives(config.search_space.primitives)
  return SearchNetwork(num_classes=num_classes, init_channels=config.model.init_channels,
                       cells_per_stage=config.model.layers, primitives=primitives,
                       partial_channels=partial_channels, skip_unused_ops=skip_unused_ops,
                       unsampled_passthrough=unsampled_passthrough)


def build_eval_model(model_config, arch: Arch, num_classes: int) -> EvalNetwork:
  """config.model.init_channels (16 in the benchmark), config.model.layers = cells per stage (5)."""
  return EvalNetwork(num_classes=num_classes, init_channels=model_config.init_channels,
                     cells_per_stage=model_config.layers, arch=arch)


# ---------------------------------------------------------------------------
# Benchmark look-up (optional).


BENCHMARK_DATASETS = ('cifar10', 'cifar10-valid', 'cifar100', 'ImageNet16-120')
BENCHMARK_PACKAGES = {'nas_201_api': 'nas-bench-201', 'nats_bench': 'nats_bench'}


def _importable(module: str) -> bool:
  try:
    return importlib.util.find_spec(module) is not None
  except (ImportError, ValueError):  # ValueError: in sys.modules without a spec.
    return module in sys.modules


def check_benchmark_settings(space) -> None:
  """At start: a benchmark look-up that is asked for can run at the end of the search."""
  path = space.get('benchmark_path', '')
  dataset = space.get('benchmark_dataset', None) or 'cifar10'
  if dataset not in BENCHMARK_DATASETS:
    raise UserError(f'unknown config.search_space.benchmark_dataset {dataset!r}; use one of '
                    f'{BENCHMARK_DATASETS}')
  if not path:
    return
  if not os.path.isfile(path):
    raise UserError(f'config.search_space.benchmark_path {path} is not a file; give the '
                    "NAS-Bench-201 file's path, or '' to skip the look-up")
  if not any(_importable(module) for module in BENCHMARK_PACKAGES):
    installs = ' or '.join(f'pip install {p}' for p in BENCHMARK_PACKAGES.values())
    raise UserError(f'config.search_space.benchmark_path is set but no benchmark API is '
                    f"installed: {installs}, or set benchmark_path '' to skip the look-up")


def benchmark_accuracy(arch: Arch, config) -> dict:
  """The tabulated accuracy of `arch` when a benchmark API and file are available.

  config.search_space.benchmark_path: NAS-Bench-201 (nas_201_api) or NATS-Bench
  topology (nats_bench) file; config.search_space.benchmark_dataset (default
  'cifar10'). Returns {'benchmark_test_acc': %, ...}, or {'benchmark': 'skipped: why'}.
  """
  space = config.search_space
  path = space.get('benchmark_path', None) if hasattr(space, 'get') else None
  dataset = (space.get('benchmark_dataset', None) if hasattr(space, 'get') else None) or 'cifar10'
  text = arch_to_string(arch)

  def skipped(why):
    logging.info('NAS-Bench-201 benchmark look-up skipped: %s', why)
    return {'benchmark': f'skipped: {why}'}

  if not path:
    return skipped('no config.search_space.benchmark_path')
  if not os.path.exists(path):
    return skipped(f'benchmark file {path} does not exist')
  api = None
  try:
    from nas_201_api import NASBench201API  # pylint: disable=g-import-not-at-top
    api = NASBench201API(path, verbose=False)
  except ImportError:
    try:
      import nats_bench  # pylint: disable=g-import-not-at-top
      api = nats_bench.create(path, 'tss', fast_mode=True, verbose=False)
    except ImportError:
      return skipped('neither nas_201_api nor nats_bench is installed')
  try:
    index = api.query_index_by_arch(text)
    info = api.get_more_info(index, dataset, hp='200', is_random=False)
  except Exception as e:  # pylint: disable=broad-except
    return skipped(f'the benchmark API failed on {text}: {e}')
  result = {'benchmark_index': int(index), 'benchmark_dataset': dataset,
            'benchmark_test_acc': float(info['test-accuracy'])}
  logging.info('NAS-Bench-201 %s test accuracy of %s: %.2f%%', dataset, text,
               result['benchmark_test_acc'])
  return result

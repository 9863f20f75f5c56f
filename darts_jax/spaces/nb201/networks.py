"""NAS-Bench-201's networks: the search network (mixed edges) and a fixed cell's network.

The network: 3x3 stem conv to C=16 + BN, N=5 cells at C, a ResNet basic block with
stride 2 to 2C, N cells, a ResNet block to 4C, N cells, BN-ReLU, global average pool,
linear (AutoDL-Projects' TinyNetwork). The search cells mix their edges with
`darts_jax.spaces.mixed_edges.MixedEdges`, fed the same `edge_weights` as the DARTS
supernet: one [6, 5] array under 'normal'.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from darts_jax.errors import UserError
from darts_jax.nn import batch_norm
from darts_jax.nn import conv
from darts_jax.nn import initializers
from darts_jax.nn import pooling
from darts_jax.spaces import mixed_edges
from darts_jax.spaces.base import SupernetOptions
from darts_jax.spaces.darts import ops as _darts_ops  # noqa: F401  Registers 'none', 'skip_connect'.
from darts_jax.spaces.nb201.arch import NUM_NODES, PRIMITIVES, Arch, edge_list

# Ops (batched over the E edges that leave one node, as in darts_jax.spaces.mixed_edges).


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
mixed_edges.register_search_op('nor_conv_1x1', lambda c, s, e, impl: NorConv(c, 1, s, e))
mixed_edges.register_search_op('nor_conv_3x3', lambda c, s, e, impl: NorConv(c, 3, s, e))
mixed_edges.register_search_op('nb201_avg_pool_3x3', lambda c, s, e, impl: AvgPool(s))


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
  options: SupernetOptions = SupernetOptions()  # See mixed_edges.MixedEdges.

  @nn.compact
  def __call__(self, x, weights, train: bool):
    impl_names = [SEARCH_OP_NAMES[p] for p in self.primitives]
    nodes = [x]
    partial = [0.] * NUM_NODES
    dst_of = [dst for dst, _ in edge_list()]
    for src, rows in _edges_by_source():
      if src >= 1:
        nodes.append(partial[src])
      out = mixed_edges.MixedEdges(impl_names, self.channels, 1, len(rows),
                                   options=self.options,
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
  options: SupernetOptions = SupernetOptions()

  @nn.compact
  def __call__(self, x, edge_weights, train: bool):
    weights = edge_weights['normal']
    return self.stem_and_stages(x, train, lambda c, name: (
        lambda s: SearchCell(self.primitives, c, self.options, name=name)(s, weights, train)))


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

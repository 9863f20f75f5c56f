"""The DARTS search network (supernet): cells of mixed operations.

Every edge is a weighted sum of the candidate ops. The op weights are an
input of the network (`edge_weights`, one [num_edges, num_ops] array per cell
type), so the architecture parameters live outside the Flax variables: the
network's variables are only `params` and `batch_stats`, and a search method
(softmax for DARTS, Gumbel sampling, ...) turns its alphas into edge weights.

Edges are evaluated grouped by their source state (see `search_ops`): when a
state is complete, all edges leaving it are computed in one batched call.
"""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from darts_jax import conv
from darts_jax import genotypes
from darts_jax import search_ops


class ReLUConvBN(nn.Module):
  """ReLU, 1x1 conv, BN: the preprocessing of a cell input."""
  channels: int
  affine: bool = False

  @nn.compact
  def __call__(self, x, train: bool):
    kernel = self.param('kernel', search_ops._kaiming(1), (1, x.shape[-1], self.channels))
    y = search_ops.pointwise(nn.relu(x)[None], kernel)
    return search_ops.BatchNorm(self.affine)(y, train)[0]


def edges_by_source(steps: int) -> list[tuple[int, list[int]]]:
  """[(source_state, [alpha rows of the edges leaving it])] in evaluation order."""
  rows = {}
  for row, (dst, src) in enumerate(genotypes.edge_list(steps)):
    rows.setdefault(src, []).append(row)
  return sorted(rows.items())


class MixedEdges(nn.Module):
  """All edges leaving one state: sum over ops of weight * op(x), per edge."""
  primitives: Sequence[str]
  channels: int
  stride: int
  num_edges: int
  depthwise_impl: str = 'auto'

  @nn.compact
  def __call__(self, x, weights, train: bool):
    """x: [B, H, W, C]; weights: [E, num_ops] -> [E, B, H', W', C]."""
    out = 0.
    for k, name in enumerate(self.primitives):
      op = search_ops.SEARCH_OPS[name](self.channels, self.stride, self.num_edges,
                                       self.depthwise_impl)
      y = op(x, train)
      if y is None:
        continue
      out = out + weights[:, k, None, None, None, None].astype(y.dtype) * y
    if isinstance(out, float):  # Only 'none' ops.
      b, h, w, _ = x.shape
      out = jnp.zeros((self.num_edges, b, h // self.stride, w // self.stride, self.channels),
                      x.dtype)
    return jnp.broadcast_to(out, (self.num_edges,) + out.shape[1:])


class SearchCell(nn.Module):
  """A normal or reduction cell of the supernet."""
  primitives: Sequence[str]
  channels: int
  reduction: bool
  reduction_prev: bool
  steps: int = 4
  multiplier: int = 4
  depthwise_impl: str = 'auto'

  @nn.compact
  def __call__(self, s0, s1, weights, train: bool):
    c = self.channels
    if self.reduction_prev:
      s0 = search_ops.FactorizedReduce(c, name='preprocess0')(s0, train)[0]
    else:
      s0 = ReLUConvBN(c, name='preprocess0')(s0, train)
    s1 = ReLUConvBN(c, name='preprocess1')(s1, train)
    states = [s0, s1]
    partial = [0.] * self.steps
    for src, rows in edges_by_source(self.steps):
      if src >= 2:
        states.append(partial[src - 2])
      stride = 2 if self.reduction and src < 2 else 1
      out = MixedEdges(self.primitives, c, stride, len(rows), self.depthwise_impl,
                       name=f'edges_from_{src}')(states[src], weights[jnp.array(rows)], train)
      for e, row in enumerate(rows):
        dst = genotypes.edge_list(self.steps)[row][0]
        partial[dst] = partial[dst] + out[e]
    states.extend(partial[len(states) - 2:])
    return jnp.concatenate(states[-self.multiplier:], axis=-1)


class SearchNetwork(nn.Module):
  """Stem, `layers` search cells (reductions at 1/3 and 2/3 depth), pool, linear."""
  primitives: Sequence[str]
  num_classes: int
  init_channels: int = 16
  layers: int = 8
  steps: int = 4
  multiplier: int = 4
  stem_multiplier: int = 3
  depthwise_impl: str = 'auto'

  @nn.compact
  def __call__(self, x, edge_weights, train: bool):
    """x: [B, H, W, C_img]; edge_weights: {'normal', 'reduce'}: [num_edges, num_ops]."""
    c_curr = self.stem_multiplier * self.init_channels
    kernel = self.param('stem_conv', search_ops._kaiming((0, 1, 2)), (3, 3, x.shape[-1], c_curr))
    s = conv.conv2d(x, kernel)
    s = search_ops.BatchNorm(affine=True, name='stem_bn')(s[None], train)[0]
    s0 = s1 = s
    c = self.init_channels
    reduction_prev = False
    for i in range(self.layers):
      reduction = i in reduction_layers(self.layers)
      if reduction:
        c *= 2
      cell = SearchCell(self.primitives, c, reduction, reduction_prev, self.steps,
                        self.multiplier, self.depthwise_impl, name=f'cell_{i}')
      s0, s1 = s1, cell(s0, s1, edge_weights['reduce' if reduction else 'normal'], train)
      reduction_prev = reduction
    y = jnp.mean(s1, axis=(1, 2))
    return nn.Dense(self.num_classes, name='classifier')(y)


def reduction_layers(layers: int) -> tuple[int, ...]:
  """The reference puts reductions at layers//3 and 2*layers//3; tiny nets get one, last."""
  if layers >= 3:
    return (layers // 3, 2 * layers // 3)
  return (layers - 1,)

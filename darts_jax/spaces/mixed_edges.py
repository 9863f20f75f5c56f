"""The candidate-op registry and the mixed edge: the building blocks of every supernet.

Every edge of a cell mixes the same candidate ops. Edges that read the same input
state differ only in their weights, so an op computes all E edges that leave one
state in one go: the input `x` is [B, H, W, C] and the output is [E, B, H', W', C]
(or [1, B, H', W', C] for an op without weights, which is the same on every edge and
is computed once; or None for the 'none' op, which contributes nothing). Compared
with one module per edge and op, this shrinks the XLA program (and its compile time)
several fold, and it is the same maths: every edge keeps its own weights.

The registry maps an op name to a factory `(channels, stride, num_edges,
depthwise_impl) -> nn.Module`, so a space's candidate ops are a list of names. To
add an op, write a Flax module that maps x [B, H, W, C] to [E or 1, B, H', W', C]
and `register_search_op(name, factory)`; a module written for a single edge can be
lifted with `per_edge(factory)`. The DARTS ops (`darts_jax.spaces.darts.ops`) and
NAS-Bench-201's register themselves here.
"""

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from darts_jax.errors import UserError
from darts_jax.spaces.base import SupernetOptions

# (channels, stride, num_edges, depthwise_impl) -> module.
SearchOpFactory = Callable[[int, int, int, str], nn.Module]

SEARCH_OPS: dict[str, SearchOpFactory] = {}


def register_search_op(name: str, factory: SearchOpFactory) -> None:
  """Adds (or replaces) a candidate op of the search space."""
  SEARCH_OPS[name] = factory


def check_primitives(primitives) -> tuple[str, ...]:
  primitives = tuple(primitives)
  unknown = [p for p in primitives if p not in SEARCH_OPS]
  if unknown:
    raise UserError(f'unknown search op(s) {unknown}; known ops: {sorted(SEARCH_OPS)} '
                    '(register new ones with darts_jax.spaces.mixed_edges.register_search_op)')
  if len(set(primitives)) != len(primitives):
    raise UserError(f'search ops listed twice in {list(primitives)}; list each op once')
  if not primitives:
    raise UserError('the search space has no ops; set config.search_space.primitives')
  return primitives


def per_edge(single_edge_factory: Callable[[int, int], nn.Module]) -> SearchOpFactory:
  """Lifts a one-edge op `(channels, stride) -> module(x, train) -> y` to E edges.

  Each edge gets its own parameters and batch statistics (vmapped over the
  edge axis); the input is shared.
  """

  def factory(channels, stride, num_edges, depthwise_impl):
    del depthwise_impl
    module_cls = nn.vmap(
        _SingleEdge, in_axes=None, out_axes=0, axis_size=num_edges,
        variable_axes={'params': 0, 'batch_stats': 0}, split_rngs={'params': True})
    return module_cls(single_edge_factory, channels, stride)

  return factory


class _SingleEdge(nn.Module):
  factory: Callable[[int, int], nn.Module]
  channels: int
  stride: int

  @nn.compact
  def __call__(self, x, train: bool):
    return self.factory(self.channels, self.stride)(x, train)


class MixedEdges(nn.Module):
  """All edges leaving one state: sum over ops of weight * op(x), per edge.

  What a search method asks of the edges comes as one `SupernetOptions`:
  `partial_channels` = K > 1 (PC-DARTS) sends only the first C/K channels
  through the ops; the other channels bypass them (max-pooled 2x2 when strided,
  scaled by the edge's total weight so that edge normalization covers the whole
  edge), then the channels are shuffled in K groups. `skip_unused_ops` (GDAS,
  random paths: one-hot weights) computes an op only when some edge of this
  state gives it a non-zero weight (`nn.cond`); the result is the same.
  `unsampled_passthrough` (GDAS in NAS-Bench-201, as AutoDL's cell: one-hot
  weights, `weight` instead of `weight * op(x)` for the ops not sampled) adds
  the unsampled ops' weights themselves: 0 in value, but their soft
  probabilities get the sum of the edge's output gradient.
  """
  primitives: Sequence[str]
  channels: int
  stride: int
  num_edges: int
  depthwise_impl: str = 'auto'
  options: SupernetOptions = SupernetOptions()

  @nn.compact
  def __call__(self, x, weights, train: bool):
    """x: [B, H, W, C]; weights: [E, num_ops] -> [E, B, H', W', C]."""
    passthrough = None
    if self.options.unsampled_passthrough:
      sampled = jax.lax.stop_gradient(weights)  # One-hot values.
      passthrough = jnp.sum(weights * (1 - sampled), axis=-1)
      weights = weights * sampled
    groups = self.options.partial_channels
    if groups > 1:
      x, bypass = jnp.split(x, [x.shape[-1] // groups], axis=-1)
    channels = self.channels // groups
    b, h, w, _ = x.shape
    shape = (self.num_edges, b, -(-h // self.stride), -(-w // self.stride), channels)
    out = 0.
    for k, name in enumerate(self.primitives):
      op = SEARCH_OPS[name](channels, self.stride, self.num_edges,
                                       self.depthwise_impl)
      if self.options.skip_unused_ops and not self.is_initializing():
        out = out + _op_if_used(self, op, x, weights[:, k], shape, train)
        continue
      y = op(x, train)
      if y is None:
        continue
      out = out + weights[:, k, None, None, None, None].astype(y.dtype) * y
    if isinstance(out, float):  # Only 'none' ops.
      out = jnp.zeros(shape, x.dtype)
    out = jnp.broadcast_to(out, shape)
    if passthrough is not None:
      out = out + passthrough[:, None, None, None, None].astype(out.dtype)
    if groups > 1:
      out = _with_bypass(out, bypass, weights, self.stride, groups)
    return out


def _op_if_used(module, op, x, weight, shape, train):
  """weight * op(x) on every edge, computed only when some edge's weight is non-zero."""

  def used(mdl, x, weight):
    y = op.clone(parent=mdl, name=op.name)(x, train)  # The variables of `module`'s op.
    if y is None:
      return jnp.zeros(shape, x.dtype)
    return jnp.broadcast_to(weight[:, None, None, None, None].astype(y.dtype) * y, shape)

  def unused(mdl, x, weight):
    del mdl, weight
    return jnp.zeros(shape, x.dtype)

  return nn.cond(jnp.any(weight != 0), used, unused, module, x, weight)


def _with_bypass(out, bypass, weights, stride, groups):
  """PC-DARTS: [mixed channels, bypassed channels], then a channel shuffle."""
  if stride > 1:
    bypass = nn.max_pool(bypass, (stride, stride), (stride, stride))
  scale = jnp.sum(weights, axis=-1)[:, None, None, None, None].astype(out.dtype)
  y = jnp.concatenate([out, scale * bypass[None].astype(out.dtype)], axis=-1)
  return channel_shuffle(y, groups)


def channel_shuffle(x, groups: int):
  """Interleaves `groups` channel groups: [g0c0, g0c1, .., g1c0, ..] -> [g0c0, g1c0, ..]."""
  c = x.shape[-1]
  return x.reshape(x.shape[:-1] + (groups, c // groups)).swapaxes(-1, -2).reshape(x.shape)

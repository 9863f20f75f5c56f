"""Candidate operations of the search space, evaluated for all edges at once.

Every edge of a DARTS cell mixes the same candidate ops. Edges that read the
same input state differ only in their weights, so each op here computes all E
edges that leave one state in one go: the input `x` is [B, H, W, C] and the
output is [E, B, H', W', C] (or [1, B, H', W', C] for an op without weights,
which is the same on every edge and is computed once). Compared with one
module per edge and op, this shrinks the XLA program (and its compile time)
several fold, and it is the same maths: every edge keeps its own weights.

The registry maps an op name to a factory `(channels, stride, num_edges,
depthwise_impl) -> nn.Module`, so a search space is just a list of names. To
add an op, write a Flax module that maps x [B, H, W, C] to
[E or 1, B, H', W', C] and `register_search_op(name, factory)`; a module
written for a single edge can be lifted with `per_edge(factory)`.
"""

from typing import Callable

import flax.linen as nn
import jax.numpy as jnp

from darts_jax import conv
from darts_jax import initializers
from darts_jax import pooling
from darts_jax.batch_norm import BatchNorm
from darts_jax.errors import UserError

# (channels, stride, num_edges, depthwise_impl) -> module.
SearchOpFactory = Callable[[int, int, int, str], nn.Module]

def pointwise(x, kernels):
  """1x1 convolutions per edge: x [1|E, B, H, W, Cin], kernels [E, Cin, Cout]."""
  return jnp.einsum('ebhwc,ecd->ebhwd', jnp.broadcast_to(x, (kernels.shape[0],) + x.shape[1:]),
                    kernels.astype(x.dtype))


# The largest 'same' padding of the built-in conv ops (dil_conv_5x5: 2 * (5 - 1) / 2).
# The first depthwise convolution of each conv op pads the edge's ReLU'd input by at least
# this much, so the ops of an edge pad their shared input identically and XLA pads it
# once, not once per kernel size (BUILD_NOTES.md, "A faster machine; one
# padded copy per edge input").
EDGE_INPUT_PAD = 4


class EdgeDepthwiseSeparable(nn.Module):
  """ReLU, depthwise kxk (stride, dilation), pointwise 1x1, BN; for E edges.

  `reads_edge_input`: this block reads the edge's input (see EDGE_INPUT_PAD).
  """
  channels_out: int
  kernel_size: int
  stride: int
  dilation: int
  num_edges: int
  depthwise_impl: str = 'auto'
  reads_edge_input: bool = False

  @nn.compact
  def __call__(self, x, train: bool):
    c_in = x.shape[-1]
    if x.ndim == 4:
      x = x[None]
    k = self.kernel_size
    dw = self.param('depthwise', initializers.torch_default_over((1, 2)),
                    (self.num_edges, k, k, c_in))
    pw = self.param('pointwise', initializers.torch_default_over(1),
                    (self.num_edges, c_in, self.channels_out))
    pad = None
    if self.reads_edge_input:
      pad = max(EDGE_INPUT_PAD, conv.same_padding(k, self.dilation))
    y = conv.depthwise_conv_edges(nn.relu(x), dw, self.stride, self.dilation,
                                  self.depthwise_impl, input_pad=pad)
    return BatchNorm()(pointwise(y, pw), train)


class SepConv(nn.Module):
  """sep_conv_kxk: the depthwise-separable block applied twice (stride on the first)."""
  channels: int
  kernel_size: int
  stride: int
  num_edges: int
  depthwise_impl: str = 'auto'

  @nn.compact
  def __call__(self, x, train: bool):
    block = lambda stride, first: EdgeDepthwiseSeparable(
        self.channels, self.kernel_size, stride, 1, self.num_edges, self.depthwise_impl,
        reads_edge_input=first)
    return block(1, False)(block(self.stride, True)(x, train), train)


class Pool(nn.Module):
  """3x3 max or average pooling (padding 1, padded cells not counted) + BN."""
  kind: str
  stride: int

  @nn.compact
  def __call__(self, x, train: bool):
    pool = pooling.max_pool_3x3 if self.kind == 'max' else pooling.avg_pool_3x3
    y = pool(x, self.stride)
    return BatchNorm()(y[None], train)


class Identity(nn.Module):

  @nn.compact
  def __call__(self, x, train: bool):
    del train
    return x[None]


class Zero(nn.Module):
  """The 'none' op: contributes nothing, so it returns None and is skipped."""

  @nn.compact
  def __call__(self, x, train: bool):
    del x, train
    return None


class FactorizedReduce(nn.Module):
  """ReLU, two 1x1 stride-2 convs (the second shifted by one pixel), concat, BN; E edges."""
  channels: int
  num_edges: int = 1

  @nn.compact
  def __call__(self, x, train: bool):
    c_in = x.shape[-1]
    half = self.channels // 2
    init = initializers.torch_default_over(1)
    k1 = self.param('conv_1', init, (self.num_edges, c_in, half))
    k2 = self.param('conv_2', init, (self.num_edges, c_in, self.channels - half))
    x = nn.relu(x)
    even = x[None, :, ::2, ::2, :]
    odd = jnp.pad(x[:, 1:, 1:, :], ((0, 0), (0, 1), (0, 1), (0, 0)))[None, :, ::2, ::2, :]
    y = jnp.concatenate([pointwise(even, k1), pointwise(odd, k2)], axis=-1)
    return BatchNorm()(y, train)


def _skip(c, stride, e, impl):
  del impl
  return Identity() if stride == 1 else FactorizedReduce(c, e)


def _sep(kernel_size):
  return lambda c, stride, e, impl: SepConv(c, kernel_size, stride, e, impl)


def _dil(kernel_size):
  return lambda c, stride, e, impl: EdgeDepthwiseSeparable(c, kernel_size, stride, 2, e, impl,
                                                           reads_edge_input=True)


SEARCH_OPS: dict[str, SearchOpFactory] = {
    'none': lambda c, stride, e, impl: Zero(),
    'max_pool_3x3': lambda c, stride, e, impl: Pool('max', stride),
    'avg_pool_3x3': lambda c, stride, e, impl: Pool('avg', stride),
    'skip_connect': _skip,
    'sep_conv_3x3': _sep(3),
    'sep_conv_5x5': _sep(5),
    'sep_conv_7x7': _sep(7),
    'dil_conv_3x3': _dil(3),
    'dil_conv_5x5': _dil(5),
}


def register_search_op(name: str, factory: SearchOpFactory) -> None:
  """Adds (or replaces) a candidate op of the search space."""
  SEARCH_OPS[name] = factory


def check_primitives(primitives) -> tuple[str, ...]:
  primitives = tuple(primitives)
  unknown = [p for p in primitives if p not in SEARCH_OPS]
  if unknown:
    raise UserError(f'unknown search op(s) {unknown}; known ops: {sorted(SEARCH_OPS)} '
                    '(register new ones with darts_jax.search_ops.register_search_op)')
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

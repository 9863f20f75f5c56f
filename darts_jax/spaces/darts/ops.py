"""The DARTS candidate ops, batched over the E edges that leave one state.

Registered in `darts_jax.spaces.mixed_edges` (see there for the batched form): none,
max_pool_3x3, avg_pool_3x3, skip_connect, sep_conv_{3,5,7}x{3,5,7}, dil_conv_{3,5}x{3,5},
as in the DARTS code's `OPS` (cnn/operations.py).
"""

import flax.linen as nn
import jax.numpy as jnp

from darts_jax.nn import conv
from darts_jax.nn import initializers
from darts_jax.nn import pooling
from darts_jax.nn.batch_norm import BatchNorm
from darts_jax.spaces import mixed_edges


def pointwise(x, kernels):
  """1x1 convolutions per edge: x [1|E, B, H, W, Cin], kernels [E, Cin, Cout]."""
  return jnp.einsum('ebhwc,ecd->ebhwd', jnp.broadcast_to(x, (kernels.shape[0],) + x.shape[1:]),
                    kernels.astype(x.dtype))


# The largest 'same' padding of the built-in conv ops (dil_conv_5x5: 2 * (5 - 1) / 2).
# The first depthwise convolution of each conv op pads the edge's ReLU'd input by at least
# this much, so the ops of an edge pad their shared input identically and XLA pads it
# once, not once per kernel size (docs/history.md, "A faster machine; one
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


DARTS_OPS: dict[str, mixed_edges.SearchOpFactory] = {
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
for _name, _factory in DARTS_OPS.items():
  mixed_edges.register_search_op(_name, _factory)

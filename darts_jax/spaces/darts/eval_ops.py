"""Operations of the evaluation ("augment") cells, as in the DARTS reference.

Every op is built by a factory `factory(C, stride, affine) -> nn.Module`; the
module maps `[N, H, W, C]` to `[N, ceil(H / stride), ceil(W / stride), C]` and
is called as `op(x, train)`. `AUGMENT_OPS` is the registry the evaluation
network reads; `register_augment_op` adds a user op.

Convolutions go through `darts_jax.nn.conv` (via the `Conv` and `DepthwiseConv`
modules here, which `darts_jax.summary` also uses to count multiply-adds) and
have no bias; the pools go through `darts_jax.nn.pooling`, as in the search cells
(faster than `reduce_window` on XLA:CPU, the same values and gradients).
Initialization and batch norm follow PyTorch's defaults so that training recipes
carry over.
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from darts_jax.nn import conv
from darts_jax.nn import initializers
from darts_jax.nn import pooling
from darts_jax.nn.batch_norm import BatchNorm
from darts_jax.errors import UserError

OpFactory = Callable[[int, int, bool], nn.Module]


def batch_norm(train: bool, affine: bool = True,
               name: str | None = None) -> Callable[[jax.Array], jax.Array]:
  """BatchNorm2d (`darts_jax.nn.batch_norm`) of [N, H, W, C], called as `batch_norm(...)(x)`.

  Must be created inside a compact method. Batch statistics in training,
  running statistics otherwise.
  """
  return functools.partial(BatchNorm(affine, name=name), train=train)


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
  return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class Conv(nn.Module):
  """Dense convolution without bias ('same' padding unless 'valid').

  `strides` may differ per axis (conv_7x1_1x7): then the stride-1 result is
  subsampled, which with symmetric 'same' padding equals the strided conv.
  """
  features: int
  kernel_size: int | tuple[int, int]
  strides: int | tuple[int, int] = 1
  dilation: int = 1
  padding: str = 'same'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kh, kw = _pair(self.kernel_size)
    sh, sw = _pair(self.strides)
    kernel = self.param('kernel', initializers.torch_default,
                        (kh, kw, x.shape[-1], self.features))
    pad = None if self.padding == 'same' else ((0, 0), (0, 0))
    if sh == sw:
      return conv.conv2d(x, kernel, sh, self.dilation, padding=pad)
    y = conv.conv2d(x, kernel, 1, self.dilation, padding=pad)
    return y[:, ::sh, ::sw, :]


class DepthwiseConv(nn.Module):
  """Depthwise k x k convolution, 'same' padding, no bias."""
  kernel_size: int
  strides: int = 1
  dilation: int = 1

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = self.kernel_size
    # Shape [k, k, C]: fan_in = k * k, as PyTorch's groups=C conv.
    kernel = self.param('kernel', initializers.torch_default, (k, k, x.shape[-1]))
    return conv.depthwise_conv(x, kernel, self.strides, self.dilation)


class Identity(nn.Module):
  """Identity; the evaluation cell never applies drop path to it."""

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    return x


class Zero(nn.Module):
  """The 'none' op: zeros, spatially strided when stride is 2."""
  stride: int = 1

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    return jnp.zeros_like(x[:, ::self.stride, ::self.stride, :])


class Pool(nn.Module):
  """3x3 max or average pool, padding 1; average excludes the padding."""
  kind: str  # 'max' or 'avg'.
  stride: int = 1

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    pool = pooling.max_pool_3x3 if self.kind == 'max' else pooling.avg_pool_3x3
    return pool(x, self.stride)


class ReLUConvBN(nn.Module):
  """ReLU, k x k conv (no bias), BN."""
  features: int
  kernel_size: int = 1
  stride: int = 1
  affine: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    x = Conv(self.features, self.kernel_size, self.stride)(nn.relu(x))
    return batch_norm(train, self.affine)(x)


class FactorizedReduce(nn.Module):
  """Halves the resolution: ReLU, two 1x1 stride-2 convs (the second on the
  input shifted by one pixel) each to features/2 channels, concat, BN."""
  features: int
  affine: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    if self.features % 2:
      raise UserError(f'FactorizedReduce needs an even channel count, got '
                      f'{self.features}; use an even init_channels')
    x = nn.relu(x)
    half = self.features // 2
    a = Conv(half, 1, 2)(x)
    # The reference slices x[1:, 1:]; padding the far edge by one keeps the
    # same values for even sizes and the same output size as `a` for odd.
    shifted = jnp.pad(x[:, 1:, 1:, :], ((0, 0), (0, 1), (0, 1), (0, 0)))
    b = Conv(half, 1, 2)(shifted)
    return batch_norm(train, self.affine)(jnp.concatenate([a, b], axis=-1))


class DilConv(nn.Module):
  """ReLU, depthwise k x k (stride, dilation), pointwise 1x1, BN."""
  features: int
  kernel_size: int
  stride: int = 1
  dilation: int = 2
  affine: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    x = DepthwiseConv(self.kernel_size, self.stride, self.dilation)(nn.relu(x))
    x = Conv(self.features, 1)(x)
    return batch_norm(train, self.affine)(x)


class SepConv(nn.Module):
  """Two stacked DilConv(dilation 1); only the first one is strided."""
  features: int
  kernel_size: int
  stride: int = 1
  affine: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    c_in = x.shape[-1]
    x = DilConv(c_in, self.kernel_size, self.stride, 1, self.affine)(x, train)
    return DilConv(self.features, self.kernel_size, 1, 1, self.affine)(x, train)


class Conv7x1_1x7(nn.Module):  # pylint: disable=invalid-name
  """ReLU, 1x7 conv (stride along W), 7x1 conv (stride along H), BN."""
  features: int
  stride: int = 1
  affine: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    x = Conv(self.features, (1, 7), (1, self.stride))(nn.relu(x))
    x = Conv(self.features, (7, 1), (self.stride, 1))(x)
    return batch_norm(train, self.affine)(x)


def _skip_connect(c: int, stride: int, affine: bool) -> nn.Module:
  return Identity() if stride == 1 else FactorizedReduce(c, affine)


AUGMENT_OPS: dict[str, OpFactory] = {
    'none': lambda c, stride, affine: Zero(stride),
    'avg_pool_3x3': lambda c, stride, affine: Pool('avg', stride),
    'max_pool_3x3': lambda c, stride, affine: Pool('max', stride),
    'skip_connect': _skip_connect,
    'sep_conv_3x3': lambda c, stride, affine: SepConv(c, 3, stride, affine),
    'sep_conv_5x5': lambda c, stride, affine: SepConv(c, 5, stride, affine),
    'sep_conv_7x7': lambda c, stride, affine: SepConv(c, 7, stride, affine),
    'dil_conv_3x3': lambda c, stride, affine: DilConv(c, 3, stride, 2, affine),
    'dil_conv_5x5': lambda c, stride, affine: DilConv(c, 5, stride, 2, affine),
    'conv_7x1_1x7': lambda c, stride, affine: Conv7x1_1x7(c, stride, affine),
}


def register_augment_op(name: str, factory: OpFactory,
                        overwrite: bool = False) -> None:
  """Adds an op for evaluation cells.

  Args:
    name: the op name used in genotypes.
    factory: `factory(C, stride, affine)` returning a module called as
      `op(x, train)` that maps [N, H, W, C] to [N, ceil(H/stride),
      ceil(W/stride), C]. Return `Identity()` for an identity so that drop
      path skips it.
    overwrite: allow replacing an existing op.
  """
  if not isinstance(name, str) or not name.isidentifier():
    raise UserError(f'op name must be an identifier like "my_conv", got '
                    f'{name!r}')
  if name in AUGMENT_OPS and not overwrite:
    raise UserError(f'op {name!r} is already registered; pass overwrite=True '
                    'to replace it')
  if not callable(factory):
    raise UserError(f'factory for op {name!r} must be callable(C, stride, '
                    f'affine), got {type(factory).__name__}')
  AUGMENT_OPS[name] = factory


def get_augment_op(name: str) -> OpFactory:
  """The factory for `name`; UserError listing the known ops otherwise."""
  try:
    return AUGMENT_OPS[name]
  except (KeyError, TypeError):
    raise UserError(
        f'unknown op {name!r}; known ops: {", ".join(AUGMENT_OPS)} '
        '(add one with darts_jax.spaces.darts.eval_ops.register_augment_op)') from None

"""Batch normalization as PyTorch's BatchNorm2d computes it, for every network here.

Momentum 0.9 of the old running value (PyTorch's momentum=0.1), epsilon 1e-5, running
mean 0 and variance 1 at the start; the search cells' BN has no affine parameters
(DARTS's `affine=False`), the evaluation cells' has.
"""

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from darts_jax.nn import initializers

_SPATIAL_AXES = (-4, -3, -2)  # B, H, W of [..., B, H, W, C].
MOMENTUM = 0.9  # PyTorch's momentum=0.1.
EPSILON = 1e-5


class BatchNorm(nn.Module):
  """Batch norm over (B, H, W) of [..., B, H, W, C], one set of stats per leading index.

  Stacked edges [E, B, H, W, C] get separate statistics per edge, exactly as
  E separate BatchNorm2d layers would. As BatchNorm2d: training normalizes with the
  batch's biased variance and moves the running variance by the unbiased one.
  """
  affine: bool = False

  @nn.compact
  def __call__(self, x, train: bool):
    feature_shape = x.shape[:-4] + x.shape[-1:]
    stat_shape = x.shape[:-4] + (1, 1, 1) + x.shape[-1:]
    running_mean = self.variable('batch_stats', 'mean', jnp.zeros, feature_shape, jnp.float32)
    running_var = self.variable('batch_stats', 'var', jnp.ones, feature_shape, jnp.float32)
    if train:
      xf = x.astype(jnp.float32)
      # Both moments in one pass over x (as flax's use_fast_variance); the clamp guards the
      # float32 cancellation. Half the memory traffic of mean((x - mean)^2), forward and
      # backward, and a CPU search step is bound by memory traffic (BUILD_NOTES.md).
      mean = jnp.mean(xf, axis=_SPATIAL_AXES, keepdims=True)
      mean_of_squares = jnp.mean(jnp.square(xf), axis=_SPATIAL_AXES, keepdims=True)
      var = jnp.maximum(mean_of_squares - jnp.square(mean), 0.)
      if not self.is_initializing():
        count = math.prod(x.shape[-4:-1])
        running_mean.value = (MOMENTUM * running_mean.value
                              + (1 - MOMENTUM) * mean.reshape(feature_shape))
        running_var.value = (MOMENTUM * running_var.value + (1 - MOMENTUM)
                             * var.reshape(feature_shape) * (count / max(count - 1, 1)))
    else:
      mean = running_mean.value.reshape(stat_shape)
      var = running_var.value.reshape(stat_shape)
    # One multiplier per channel (with the affine scale folded in): one multiply and one
    # add per element, forward and backward.
    multiplier = jax.lax.rsqrt(var + EPSILON)
    if not self.affine:
      return (x - mean.astype(x.dtype)) * multiplier.astype(x.dtype)
    scale = self.param('scale', initializers.ones, feature_shape)
    bias = self.param('bias', initializers.zeros, feature_shape)
    multiplier = multiplier * scale.reshape(stat_shape)
    return ((x - mean.astype(x.dtype)) * multiplier.astype(x.dtype)
            + bias.reshape(stat_shape).astype(x.dtype))


def chain_running_stats(start, updated: Sequence):
  """The running statistics after training-mode forwards run one after another.

  Each of `updated` is the 'batch_stats' of one forward that started from `start`
  (MOMENTUM * start + (1 - MOMENTUM) * batch statistics); the update is affine
  in the old value, so the chain follows without rerunning any forward.
  """
  def chain(start_leaf, first, *rest):
    running = first
    for leaf in rest:
      running = MOMENTUM * running + (leaf - MOMENTUM * start_leaf)
    return running

  return jax.tree.map(chain, start, *updated) if updated else start

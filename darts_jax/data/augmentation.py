"""On-device image augmentation: pure, jit-able JAX functions.

All functions take a batch [n, H, W, C], keep its shape and dtype, and are
deterministic given the PRNG key. The DARTS recipe for CIFAR is
`random_crop_flip(padding=4)` on uint8 images, `normalize`, then `cutout`
(length 16) on the normalised images, so cut pixels are 0 after
normalisation, as in the reference code.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp


def normalize(images_uint8: jax.Array, mean: Sequence[float],
              std: Sequence[float],
              dtype: jnp.dtype = jnp.float32) -> jax.Array:
  """Scales to [0, 1], then (x - mean) / std per channel; returns `dtype`."""
  x = jnp.asarray(images_uint8).astype(jnp.float32) / 255.0
  mean = jnp.asarray(mean, jnp.float32)
  std = jnp.asarray(std, jnp.float32)
  return ((x - mean) / std).astype(dtype)


def random_crop_flip(key: jax.Array, images: jax.Array,
                     padding: int = 4) -> jax.Array:
  """Per example: a random HxW crop of the zero-padded image, random h-flip."""
  n, h, w, _ = images.shape
  crop_key, flip_key = jax.random.split(key)
  offsets = jax.random.randint(crop_key, (n, 2), 0, 2 * padding + 1)
  padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding),
                            (0, 0)))

  def crop(image: jax.Array, offset: jax.Array) -> jax.Array:
    return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0),
                                 (h, w, image.shape[-1]))

  cropped = jax.vmap(crop)(padded, offsets)
  flip = jax.random.bernoulli(flip_key, 0.5, (n,))
  return jnp.where(flip[:, None, None, None], cropped[:, :, ::-1], cropped)


def cutout(key: jax.Array, images: jax.Array, length: int) -> jax.Array:
  """Per example: zeroes a `length` square centred uniformly in the image.

  As in the DARTS reference, the square is clipped at the borders (so it may
  be smaller) and covers rows [cy - length // 2, cy + length // 2).
  """
  n, h, w, _ = images.shape
  ky, kx = jax.random.split(key)
  cy = jax.random.randint(ky, (n, 1, 1), 0, h)
  cx = jax.random.randint(kx, (n, 1, 1), 0, w)
  ys = jnp.arange(h)[None, :, None]
  xs = jnp.arange(w)[None, None, :]
  half = length // 2
  inside = ((ys >= cy - half) & (ys < cy + half) & (xs >= cx - half) &
            (xs < cx + half))
  return jnp.where(inside[..., None], jnp.zeros((), images.dtype), images)

"""The weight optimizer and schedules of the DARTS code, and the alphas' Adam: pure maths.

The SGD update is written out (global-norm clip, L2 weight decay, momentum, optionally
Nesterov: PyTorch's torch.optim.SGD semantics) because its momentum buffer is an input of
the second-order virtual step (`architect`).
"""

import jax
import jax.numpy as jnp
import optax

from darts_jax.optim import architect


def cosine_lr(epoch, lr: float, lr_min: float, epochs: int, warmup_epochs: int = 0):
  """The reference's per-epoch cosine annealing from lr to lr_min.

  With warmup_epochs = n > 0, epoch e < n runs at (e + 1) / n of it (PC-DARTS's ImageNet
  search: n = 5, for batches above 256).
  """
  rate = lr_min + 0.5 * (lr - lr_min) * (1 + jnp.cos(jnp.pi * epoch / epochs))
  if warmup_epochs > 0:
    rate = rate * jnp.minimum(1.0, (epoch + 1) / warmup_epochs)
  return rate


def exponential_lr(epoch, lr: float, decay: float):
  """lr * decay ** epoch (the DARTS ImageNet evaluation's StepLR(1, 0.97))."""
  return lr * decay ** epoch


def sgd_momentum_update(params, grads, buffer, lr, momentum, weight_decay, grad_clip,
                        nesterov=False):
  """PyTorch SGD (momentum, L2 weight decay, optionally Nesterov) after global-norm
  clipping (none when grad_clip <= 0)."""
  if grad_clip > 0:
    norm = architect.global_norm(grads)
    scale = jnp.minimum(1.0, grad_clip / (norm + 1e-6))
    grads = jax.tree.map(lambda g: g * scale, grads)
  decayed = jax.tree.map(lambda g, w: g + weight_decay * w, grads, params)
  buffer = jax.tree.map(lambda m, d: momentum * m + d, buffer, decayed)
  if nesterov:  # torch.optim.SGD(nesterov=True): d + momentum * (momentum * m + d).
    updates = jax.tree.map(lambda d, m: d + momentum * m, decayed, buffer)
  else:
    updates = buffer
  params = jax.tree.map(lambda w, u: w - lr * u, params, updates)
  return params, buffer


def alpha_optimizer(lr: float, beta1: float, beta2: float, weight_decay: float,
                    grad_clip: float = 0.0) -> optax.GradientTransformation:
  """Adam with L2 weight decay added to the gradient (PyTorch Adam semantics), after
  global-norm clipping when grad_clip > 0 (PC-DARTS's ImageNet search)."""
  decayed_adam = [optax.add_decayed_weights(weight_decay), optax.adam(lr, b1=beta1, b2=beta2)]
  if grad_clip > 0:
    return optax.chain(optax.clip_by_global_norm(grad_clip), *decayed_adam)
  return optax.chain(*decayed_adam)


def all_finite(*trees) -> jax.Array:
  """True when every element of every leaf is finite (no overflow from squaring)."""
  return jnp.all(jnp.isfinite(architect.flat_float32(trees)))

"""Bilevel optimization: the architecture (alpha) gradients of DARTS.

Pure functions of explicit pytrees. `loss_fn(params, alphas, batch)` returns
the mean loss of the supernet (and any auxiliary output); everything here is
built on it, so the same code serves every search space and method.

Notation (Liu et al. 2019, eq. 6-8): w are the weights, a the alphas,
w' = w - xi * (momentum * m + grad_w L_train(w, a) + wd * w) the virtual
("unrolled") SGD step with the weight optimizer's momentum buffer m.

  first order:   grad_a L_val(w, a)
  second order:  d/da L_val(w'(a), a)
                 = grad_a L_val(w', a) - xi * grad^2_{a,w} L_train(w, a) . grad_w' L_val(w', a)
    * 'exact' computes the Hessian-vector product exactly (forward-over-reverse
      autodiff);
    * 'finite_difference' is the paper's central difference with
      R = 0.01 / ||v||: (grad_a L_train(w + R v) - grad_a L_train(w - R v)) / (2 R).

grad_w L_train(w, a) in w' is either computed here or passed in as
`train_grads` by a trainer that also steps the weights with it
(config.arch.share_train_grad; one train pass fewer per second-order step).
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp

Pytree = Any
LossFn = Callable[[Pytree, Pytree, Any], tuple[jax.Array, Any]]

ORDERS = ('first', 'second_exact', 'second_fd')
FD_EPSILON = 0.01


def _tree_axpy(a, x, y):
  """a * x + y over pytrees."""
  return jax.tree.map(lambda xi, yi: a * xi + yi, x, y)


def flat_float32(tree) -> jax.Array:
  """All leaves as one float32 vector.

  Whole-tree reductions over this are one XLA kernel instead of one per leaf
  (a leaf's shape makes its own kernel; the supernet has ~150 weight leaves).
  """
  return jnp.concatenate([jnp.ravel(x).astype(jnp.float32) for x in jax.tree.leaves(tree)])


def global_norm(tree) -> jax.Array:
  return jnp.sqrt(jnp.sum(jnp.square(flat_float32(tree))))


def virtual_step(loss_fn: LossFn, params, alphas, train_batch, xi, momentum_buffer,
                 momentum: float, weight_decay: float, train_grads=None):
  """w' = w - xi * (momentum * m + grad_w L_train(w, a) + wd * w).

  Differentiable in a unless the precomputed `train_grads` (grad_w L_train) are given.
  """
  grads = train_grads
  if grads is None:
    grads = jax.grad(lambda p: loss_fn(p, alphas, train_batch)[0])(params)
  if momentum_buffer is None:
    momentum_buffer = jax.tree.map(jnp.zeros_like, params)
  return jax.tree.map(
      lambda w, g, m: w - xi * (momentum * m + g + weight_decay * w),
      params, grads, momentum_buffer)


def first_order_grad(loss_fn: LossFn, params, alphas, val_batch):
  (loss, aux), grads = jax.value_and_grad(
      lambda a: loss_fn(params, a, val_batch), has_aux=True)(alphas)
  return grads, loss, aux


def _val_grads_after_virtual_step(loss_fn: LossFn, params, alphas, train_batch, val_batch,
                                  xi, momentum_buffer, momentum: float, weight_decay: float,
                                  train_grads):
  """((L_val, aux), (grad_w' L_val, grad_a L_val)) at the virtual step w' (held constant)."""
  w_prime = jax.lax.stop_gradient(virtual_step(
      loss_fn, params, alphas, train_batch, xi, momentum_buffer, momentum, weight_decay,
      train_grads))
  return jax.value_and_grad(
      lambda w, a: loss_fn(w, a, val_batch), argnums=(0, 1), has_aux=True)(w_prime, alphas)


def second_order_exact_grad(loss_fn: LossFn, params, alphas, train_batch, val_batch, xi,
                            momentum_buffer, momentum: float, weight_decay: float,
                            train_grads=None):
  """Total derivative of L_val(w'(a), a), through the virtual step.

  Only grad_w L_train in w' depends on a, so the implicit term is the mixed
  Hessian-vector product grad^2_{a,w} L_train(w, a) . v with v = grad_w' L_val,
  computed exactly as forward-over-reverse: the directional derivative along v
  of grad_a L_train(w, a). Reverse-over-reverse through the virtual step is the
  same maths but slower and keeps every residual of the train backward pass
  alive (BUILD_NOTES.md, "Depthwise primitives, forward-over-reverse").
  """
  (loss, aux), (grad_w, grad_a) = _val_grads_after_virtual_step(
      loss_fn, params, alphas, train_batch, val_batch, xi, momentum_buffer, momentum,
      weight_decay, train_grads)
  train_alpha_grad = lambda w: jax.grad(lambda a: loss_fn(w, a, train_batch)[0])(alphas)
  _, implicit = jax.jvp(train_alpha_grad, (params,), (grad_w,))
  grads = jax.tree.map(lambda g, h: g - xi * h, grad_a, implicit)
  return grads, loss, aux


def second_order_fd_grad(loss_fn: LossFn, params, alphas, train_batch, val_batch, xi,
                         momentum_buffer, momentum: float, weight_decay: float,
                         train_grads=None, epsilon: float = FD_EPSILON):
  """The paper's finite-difference approximation of the second-order gradient."""
  (loss, aux), (grad_w, grad_a) = _val_grads_after_virtual_step(
      loss_fn, params, alphas, train_batch, val_batch, xi, momentum_buffer, momentum,
      weight_decay, train_grads)
  r = epsilon / (global_norm(grad_w) + 1e-12)
  train_alpha_grad = jax.grad(lambda a, w: loss_fn(w, a, train_batch)[0])
  plus = train_alpha_grad(alphas, _tree_axpy(r, grad_w, params))
  minus = train_alpha_grad(alphas, _tree_axpy(-r, grad_w, params))
  # Central difference: divide by 2R (the bug to avoid is multiplying by R/2).
  implicit = jax.tree.map(lambda p, n: (p - n) / (2.0 * r), plus, minus)
  grads = jax.tree.map(lambda g, h: g - xi * h, grad_a, implicit)
  return grads, loss, aux


def alpha_grad(order: str, loss_fn: LossFn, params, alphas, train_batch, val_batch, xi,
               momentum_buffer, momentum: float, weight_decay: float, train_grads=None):
  """Dispatches on `order` in ORDERS; returns (grads, val_loss, aux).

  `train_grads` (grad_w L_train(w, a), second order only) skips recomputing them.
  """
  if order == 'first':
    return first_order_grad(loss_fn, params, alphas, val_batch)
  fn = {'second_exact': second_order_exact_grad, 'second_fd': second_order_fd_grad}[order]
  return fn(loss_fn, params, alphas, train_batch, val_batch, xi, momentum_buffer, momentum,
            weight_decay, train_grads)

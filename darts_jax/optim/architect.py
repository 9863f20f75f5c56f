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

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

Pytree = Any
LossFn = Callable[[Pytree, Pytree, Any], tuple[jax.Array, Any]]

ORDERS = ('first', 'second_exact', 'second_fd')
FD_EPSILON = 0.01


class AlphaGrad(NamedTuple):
  """An alpha gradient and the auxiliary outputs of the forwards behind it.

  `forward_auxes`: the aux of each forward that the DARTS code runs on the network
  itself, in order (its forwards move the running BN statistics): first order, the
  validation forward; second order, the virtual step's train forward (none when
  `train_grads` were given: the caller ran it) and the Hessian-vector product's two
  train forwards. Its second-order validation forward at w' runs on a copy.
  """
  grads: Pytree
  val_loss: jax.Array
  val_aux: Any
  forward_auxes: tuple


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


def _virtual_step_and_aux(loss_fn: LossFn, params, alphas, train_batch, xi, momentum_buffer,
                          momentum: float, weight_decay: float, train_grads=None):
  """(w', aux of the train forward or None when `train_grads` are given)."""
  grads, aux = train_grads, None
  if grads is None:
    grads, aux = jax.grad(lambda p: loss_fn(p, alphas, train_batch), has_aux=True)(params)
  if momentum_buffer is None:
    momentum_buffer = jax.tree.map(jnp.zeros_like, params)
  w_prime = jax.tree.map(
      lambda w, g, m: w - xi * (momentum * m + g + weight_decay * w),
      params, grads, momentum_buffer)
  return w_prime, aux


def virtual_step(loss_fn: LossFn, params, alphas, train_batch, xi, momentum_buffer,
                 momentum: float, weight_decay: float, train_grads=None):
  """w' = w - xi * (momentum * m + grad_w L_train(w, a) + wd * w).

  Differentiable in a unless the precomputed `train_grads` (grad_w L_train) are given.
  """
  return _virtual_step_and_aux(loss_fn, params, alphas, train_batch, xi, momentum_buffer,
                               momentum, weight_decay, train_grads)[0]


def first_order_grad(loss_fn: LossFn, params, alphas, val_batch) -> AlphaGrad:
  (loss, aux), grads = jax.value_and_grad(
      lambda a: loss_fn(params, a, val_batch), has_aux=True)(alphas)
  return AlphaGrad(grads, loss, aux, (aux,))


def _val_grads_after_virtual_step(loss_fn: LossFn, params, alphas, train_batch, val_batch,
                                  xi, momentum_buffer, momentum: float, weight_decay: float,
                                  train_grads):
  """((L_val, aux), (grad_w' L_val, grad_a L_val), the virtual step's forward auxes) at the
  virtual step w' (held constant)."""
  w_prime, train_aux = _virtual_step_and_aux(
      loss_fn, params, alphas, train_batch, xi, momentum_buffer, momentum, weight_decay,
      train_grads)
  value, grads = jax.value_and_grad(
      lambda w, a: loss_fn(w, a, val_batch), argnums=(0, 1), has_aux=True)(
          jax.lax.stop_gradient(w_prime), alphas)
  return value, grads, () if train_aux is None else (train_aux,)


def second_order_exact_grad(loss_fn: LossFn, params, alphas, train_batch, val_batch, xi,
                            momentum_buffer, momentum: float, weight_decay: float,
                            train_grads=None) -> AlphaGrad:
  """Total derivative of L_val(w'(a), a), through the virtual step.

  Only grad_w L_train in w' depends on a, so the implicit term is the mixed
  Hessian-vector product grad^2_{a,w} L_train(w, a) . v with v = grad_w' L_val,
  computed exactly as forward-over-reverse: the directional derivative along v
  of grad_a L_train(w, a). Reverse-over-reverse through the virtual step is the
  same maths but slower and keeps every residual of the train backward pass
  alive (docs/history.md, "Depthwise primitives, forward-over-reverse").

  The product's forward at (w, a) stands for the finite difference's two forwards
  at w +- R v in the limit R -> 0, so its aux appears twice in `forward_auxes`.
  """
  (loss, aux), (grad_w, grad_a), forward_auxes = _val_grads_after_virtual_step(
      loss_fn, params, alphas, train_batch, val_batch, xi, momentum_buffer, momentum,
      weight_decay, train_grads)
  train_alpha_grad = lambda w: jax.grad(lambda a: loss_fn(w, a, train_batch),
                                        has_aux=True)(alphas)
  _, implicit, product_aux = jax.jvp(train_alpha_grad, (params,), (grad_w,), has_aux=True)
  grads = jax.tree.map(lambda g, h: g - xi * h, grad_a, implicit)
  return AlphaGrad(grads, loss, aux, forward_auxes + (product_aux, product_aux))


def second_order_fd_grad(loss_fn: LossFn, params, alphas, train_batch, val_batch, xi,
                         momentum_buffer, momentum: float, weight_decay: float,
                         train_grads=None, epsilon: float = FD_EPSILON) -> AlphaGrad:
  """The paper's finite-difference approximation of the second-order gradient."""
  (loss, aux), (grad_w, grad_a), forward_auxes = _val_grads_after_virtual_step(
      loss_fn, params, alphas, train_batch, val_batch, xi, momentum_buffer, momentum,
      weight_decay, train_grads)
  r = epsilon / (global_norm(grad_w) + 1e-12)
  train_alpha_grad = jax.grad(lambda a, w: loss_fn(w, a, train_batch), has_aux=True)
  plus, plus_aux = train_alpha_grad(alphas, _tree_axpy(r, grad_w, params))
  minus, minus_aux = train_alpha_grad(alphas, _tree_axpy(-r, grad_w, params))
  # Central difference: divide by 2R (the bug to avoid is multiplying by R/2).
  implicit = jax.tree.map(lambda p, n: (p - n) / (2.0 * r), plus, minus)
  grads = jax.tree.map(lambda g, h: g - xi * h, grad_a, implicit)
  return AlphaGrad(grads, loss, aux, forward_auxes + (plus_aux, minus_aux))


def alpha_grad(order: str, loss_fn: LossFn, params, alphas, train_batch, val_batch, xi,
               momentum_buffer, momentum: float, weight_decay: float,
               train_grads=None) -> AlphaGrad:
  """Dispatches on `order` in ORDERS.

  `train_grads` (grad_w L_train(w, a), second order only) skips recomputing them.
  """
  if order == 'first':
    return first_order_grad(loss_fn, params, alphas, val_batch)
  fn = {'second_exact': second_order_exact_grad, 'second_fd': second_order_fd_grad}[order]
  return fn(loss_fn, params, alphas, train_batch, val_batch, xi, momentum_buffer, momentum,
            weight_decay, train_grads)

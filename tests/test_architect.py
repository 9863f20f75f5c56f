"""Hypergradients: exact second order against finite differences, on a small model.

The model is a two-layer network whose hidden layer mixes two candidate
nonlinearities with softmax(alpha) weights: small enough to check in float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from darts_jax import architect

MOMENTUM, WEIGHT_DECAY, XI = 0.9, 3e-4, 0.05


def _loss_fn(params, alphas, batch):
  w = jax.nn.softmax(alphas['mix'])
  h = batch['x'] @ params['w1']
  h = w[0] * jnp.tanh(h) + w[1] * jax.nn.relu(h) + w[2] * h
  logits = h @ params['w2']
  loss = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), batch['y'][:, None], 1))
  return loss, None


def _problem():
  ks = jax.random.split(jax.random.key(0), 6)
  params = {'w1': jax.random.normal(ks[0], (5, 7)), 'w2': jax.random.normal(ks[1], (7, 3))}
  alphas = {'mix': 0.3 * jax.random.normal(ks[2], (3,))}
  train = {'x': jax.random.normal(ks[3], (16, 5)), 'y': jax.random.randint(ks[4], (16,), 0, 3)}
  val = {'x': jax.random.normal(ks[5], (16, 5)), 'y': jax.random.randint(ks[4], (16,), 0, 3)[::-1]}
  buffer = jax.tree.map(lambda p: 0.1 * jnp.ones_like(p), params)
  return params, alphas, train, val, buffer


def _f64(tree):
  return jax.tree.map(lambda x: x.astype(jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating)
                      else x, tree)


def test_exact_second_order_matches_numerical_derivative():
  """d/da L_val(w'(a), a) by central differences in a, in float64 (independent of JAX AD)."""
  with jax.enable_x64(True):
    params, alphas, train, val, buffer = map(_f64, _problem())
    exact, _, _ = architect.second_order_exact_grad(
        _loss_fn, params, alphas, train, val, XI, buffer, MOMENTUM, WEIGHT_DECAY)

    def total(a):
      w_prime = architect.virtual_step(_loss_fn, params, {'mix': a}, train, XI, buffer,
                                       MOMENTUM, WEIGHT_DECAY)
      return _loss_fn(w_prime, {'mix': a}, val)[0]

    h = 1e-6
    numeric = np.array([(total(alphas['mix'].at[i].add(h)) - total(alphas['mix'].at[i].add(-h)))
                        / (2 * h) for i in range(3)])
    np.testing.assert_allclose(exact['mix'], numeric, rtol=1e-6, atol=1e-9)


def test_finite_difference_matches_exact_and_divides_by_2r():
  with jax.enable_x64(True):
    params, alphas, train, val, buffer = map(_f64, _problem())
    args = (_loss_fn, params, alphas, train, val, XI, buffer, MOMENTUM, WEIGHT_DECAY)
    exact, _, _ = architect.second_order_exact_grad(*args)
    fd, _, _ = architect.second_order_fd_grad(*args)
    first, _, _ = architect.first_order_grad(_loss_fn, params, alphas, val)
    # The FD estimate of the paper (R = 0.01/||v||) is accurate to O(R^2).
    np.testing.assert_allclose(fd['mix'], exact['mix'], rtol=1e-4, atol=1e-7)
    # The test has teeth: the implicit term is not negligible here, so an
    # implementation that scaled it by R/2 instead of 1/(2R) would fail.
    implicit = exact['mix'] - architect.second_order_exact_grad(
        _loss_fn, params, alphas, train, val, 0.0, buffer, MOMENTUM, WEIGHT_DECAY)[0]['mix']
    assert np.max(np.abs(implicit)) > 1e-3
    assert np.max(np.abs(fd['mix'] - first['mix'])) > 1e-3


def test_virtual_step_is_the_sgd_momentum_step():
  params, alphas, train, _, buffer = _problem()
  grads = jax.grad(lambda p: _loss_fn(p, alphas, train)[0])(params)
  w_prime = architect.virtual_step(_loss_fn, params, alphas, train, XI, buffer, MOMENTUM,
                                   WEIGHT_DECAY)
  for name in params:
    expected = params[name] - XI * (MOMENTUM * buffer[name] + grads[name]
                                    + WEIGHT_DECAY * params[name])
    np.testing.assert_allclose(w_prime[name], expected, rtol=1e-6)


@pytest.mark.parametrize('order', architect.ORDERS)
def test_alpha_grad_dispatch(order):
  params, alphas, train, val, buffer = _problem()
  grads, loss, _ = architect.alpha_grad(order, _loss_fn, params, alphas, train, val, XI, buffer,
                                        MOMENTUM, WEIGHT_DECAY)
  assert grads['mix'].shape == (3,)
  assert np.isfinite(float(loss))

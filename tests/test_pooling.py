"""The slice pools against Flax's reduce_window pools: values, gradients, forward mode,
ties, nested derivatives and vmap."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from darts_jax.nn import pooling


def _reference(kind, x, stride):
  window, strides, pad = (3, 3), (stride, stride), ((1, 1), (1, 1))
  if kind == 'max':
    return nn.max_pool(x, window, strides, pad)
  return nn.avg_pool(x, window, strides, pad, count_include_pad=False)


def _pool(kind):
  return pooling.max_pool_3x3 if kind == 'max' else pooling.avg_pool_3x3


@pytest.mark.parametrize('kind', ['max', 'avg'])
@pytest.mark.parametrize('stride', [1, 2])
@pytest.mark.parametrize('size', [(7, 7), (8, 6), (1, 2)])
def test_pool_matches_reduce_window_values_and_gradients(kind, stride, size):
  x = jax.random.normal(jax.random.key(0), (2,) + size + (3,))
  cotangent = jax.random.normal(jax.random.key(1), _reference(kind, x, stride).shape)
  loss = lambda fn: lambda x: jnp.sum(fn(x) * cotangent)
  got, want = _pool(kind)(x, stride), _reference(kind, x, stride)
  assert got.shape == want.shape
  assert jnp.allclose(got, want, rtol=1e-6, atol=1e-6)
  got_grad = jax.grad(loss(lambda x: _pool(kind)(x, stride)))(x)
  want_grad = jax.grad(loss(lambda x: _reference(kind, x, stride)))(x)
  assert jnp.allclose(got_grad, want_grad, rtol=1e-5, atol=1e-6)


def test_max_pool_gradient_reaches_only_window_maxima():
  """Each output's cotangent lands on its window's maximum (no ties in random data)."""
  x = jax.random.normal(jax.random.key(2), (1, 5, 5, 1))
  grad = jax.grad(lambda x: pooling.max_pool_3x3(x, 2)[0, 1, 1, 0])(x)
  window = x[0, 1:4, 1:4, 0]
  assert float(grad.sum()) == 1.
  assert float(grad[0, 1:4, 1:4, 0][window == window.max()][0]) == 1.


@pytest.mark.parametrize('kind', ['max', 'avg'])
def test_pool_has_forward_mode_over_reverse(kind):
  """The exact hypergradient differentiates the pools' gradient in forward mode."""
  x = jax.random.normal(jax.random.key(3), (2, 6, 6, 2))
  direction = jax.random.normal(jax.random.key(4), x.shape)
  grad_of = lambda fn: jax.grad(lambda x: jnp.sum(jnp.sin(fn(x, 1))))
  _, got = jax.jvp(grad_of(_pool(kind)), (x,), (direction,))
  _, want = jax.jvp(grad_of(lambda x, s: _reference(kind, x, s)), (x,), (direction,))
  assert jnp.allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('stride', [1, 2])
def test_max_pool_gives_ties_to_the_first_maximum_like_select_and_scatter(stride):
  """Equal inputs: each window's cotangent goes to its first element in row-major order."""
  x = jnp.ones((1, 5, 4, 2))
  got = jax.grad(lambda x: jnp.sum(pooling.max_pool_3x3(x, stride)))(x)
  want = jax.grad(lambda x: jnp.sum(_reference('max', x, stride)))(x)
  assert jnp.array_equal(got, want)


@pytest.mark.parametrize('kind', ['max', 'avg'])
@pytest.mark.parametrize('stride', [1, 2])
def test_pool_nested_derivatives_and_vmap_match_reduce_window(kind, stride):
  """Reverse over reverse, forward over forward, and a vmapped gradient, in float64."""
  with jax.enable_x64(True):
    x = jax.random.normal(jax.random.key(5), (2, 7, 6, 3), jnp.float64)
    direction = jax.random.normal(jax.random.key(6), x.shape, jnp.float64)
    fns = {'got': lambda x: _pool(kind)(x, stride), 'want': lambda x: _reference(kind, x, stride)}
    results = {}
    for name, fn in fns.items():
      grad = jax.grad(lambda x: jnp.sum(jnp.sin(fn(x))))
      second_reverse = jax.grad(lambda x: jnp.sum(grad(x) * direction))(x)
      tangent = lambda x: jax.jvp(fn, (x,), (direction,))[1]
      second_forward = jax.jvp(tangent, (x,), (direction,))[1]
      per_example = jax.vmap(grad)(x[:, None])[:, 0]
      results[name] = (second_reverse, second_forward, per_example)
    for got, want in zip(results['got'], results['want']):
      assert jnp.allclose(got, want, rtol=1e-12, atol=1e-12)

"""The CPU depthwise lowerings ('slices', the default, and 'loop') against XLA's grouped
convolution: values, gradients, 2nd order, forward mode and vmap."""

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np
import pytest

from darts_jax.nn import conv


def _grouped_reference(x, kernels, stride, dilation):
  """Depthwise convs of E edges with lax.conv_general_dilated(feature_group_count=C)."""
  k, c = kernels.shape[1], kernels.shape[-1]
  pad = dilation * (k - 1) // 2
  x = jnp.broadcast_to(x, (kernels.shape[0],) + x.shape[1:])
  return jnp.stack([
      lax.conv_general_dilated(
          x[e], kernels[e][:, :, None, :], window_strides=(stride, stride),
          padding=((pad, pad), (pad, pad)), rhs_dilation=(dilation, dilation),
          dimension_numbers=('NHWC', 'HWIO', 'NHWC'), feature_group_count=c)
      for e in range(kernels.shape[0])])


CASES = [(True, 3, 1, 1), (False, 3, 1, 1), (True, 5, 1, 1), (False, 5, 2, 1), (True, 3, 2, 1),
         (True, 5, 2, 2), (False, 3, 1, 2), (True, 1, 1, 1)]


def _inputs(shared, k, num_edges=3, channels=4):
  x = jax.random.normal(jax.random.key(0), (1 if shared else num_edges, 2, 9, 9, channels))
  w = jax.random.normal(jax.random.key(1), (num_edges, k, k, channels))
  return x, w


@pytest.mark.parametrize('impl', ['slices', 'loop'])
@pytest.mark.parametrize('shared,k,dilation,stride', CASES)
def test_taps_match_grouped_conv_values_and_gradients(shared, k, dilation, stride, impl):
  x, w = _inputs(shared, k)

  def loss(fn):
    return lambda x, w: jnp.sum(jnp.sin(fn(x, w)))

  taps = lambda x, w: conv.depthwise_conv_edges(x, w, stride, dilation, impl)
  ref = lambda x, w: _grouped_reference(x, w, stride, dilation)
  np.testing.assert_allclose(taps(x, w), ref(x, w), rtol=1e-5, atol=1e-5)
  grads = jax.grad(loss(taps), (0, 1))(x, w)
  ref_grads = jax.grad(loss(ref), (0, 1))(x, w)
  for g, r in zip(grads, ref_grads):
    assert g.shape == r.shape
    np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('impl', ['slices', 'loop'])
@pytest.mark.parametrize('shared,k,dilation,stride', [(True, 3, 1, 1), (False, 5, 2, 2)])
def test_second_order_matches_grouped_conv(shared, k, dilation, stride, impl):
  """Gradients of gradients (the exact DARTS hypergradient differentiates a weight gradient).

  In float64: in float32 the summation order alone moves these values by ~1e-4.
  """
  with jax.enable_x64(True):
    x, w = _inputs(shared, k)
    x, w = x.astype(jnp.float64), w.astype(jnp.float64)
    _check_second_order(x, w, stride, dilation, impl)


@pytest.mark.parametrize('impl', ['loop', 'slices'])
@pytest.mark.parametrize('shared,k,dilation,stride', [(True, 3, 1, 1), (False, 5, 2, 2)])
def test_forward_over_reverse_matches_grouped_conv(shared, k, dilation, stride, impl):
  """jvp of a gradient (the exact hypergradient's Hessian-vector product), float64."""
  with jax.enable_x64(True):
    x, w = _inputs(shared, k)
    x, w = x.astype(jnp.float64), w.astype(jnp.float64)
    dx, dw = jnp.cos(x), jnp.sin(w)

    def grad_of(fn):
      return jax.grad(lambda x, w: jnp.sum(jnp.sin(fn(x, w))), (0, 1))

    taps = lambda x, w: conv.depthwise_conv_edges(x, w, stride, dilation, impl)
    ref = lambda x, w: _grouped_reference(x, w, stride, dilation)
    tangents = jax.jvp(grad_of(taps), (x, w), (dx, dw))[1]
    ref_tangents = jax.jvp(grad_of(ref), (x, w), (dx, dw))[1]
    for t, r in zip(tangents, ref_tangents):
      assert t.shape == r.shape and t.dtype == jnp.float64
      np.testing.assert_allclose(t, r, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize('impl', ['slices', 'loop'])
def test_under_vmap_matches_per_example_calls(impl):
  x, w = _inputs(True, 3)
  xs = jnp.stack([x, 2 * x + 1])
  taps = lambda x, w: conv.depthwise_conv_edges(x, w, 1, 1, impl)
  batched = jax.vmap(taps, in_axes=(0, None))(xs, w)
  np.testing.assert_allclose(batched[1], taps(xs[1], w), rtol=1e-6, atol=1e-6)
  grads = jax.vmap(jax.grad(lambda x, w: jnp.sum(taps(x, w) ** 2), 1), in_axes=(0, None))(xs, w)
  np.testing.assert_allclose(grads[0], jax.grad(lambda w: jnp.sum(taps(x, w) ** 2))(w),
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('impl', ['slices', 'loop'])
@pytest.mark.parametrize('k,dilation,stride', [(3, 1, 1), (5, 1, 2), (3, 2, 1)])
def test_larger_input_pad_is_the_same_convolution(k, dilation, stride, impl):
  """An input padded beyond 'same' (shared by several kernel sizes) changes no value."""
  x, w = _inputs(True, k)

  def value_and_grads(input_pad):
    fn = lambda x, w: jnp.sum(jnp.sin(conv.depthwise_conv_edges(x, w, stride, dilation, impl,
                                                                 input_pad=input_pad)))
    return jax.value_and_grad(fn, (0, 1))(x, w)

  with jax.enable_x64(True):
    x, w = x.astype(jnp.float64), w.astype(jnp.float64)
    same, padded = value_and_grads(None), value_and_grads(4)
    for a, b in zip(jax.tree.leaves(same), jax.tree.leaves(padded)):
      np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match='less than'):
      value_and_grads(conv.same_padding(k, dilation) - 1)


def _check_second_order(x, w, stride, dilation, impl):

  def outer(fn):
    def f(x, w):
      gx, gw = jax.grad(lambda x, w: jnp.sum(jnp.sin(fn(x, w))), (0, 1))(x, w)
      return jnp.sum(jnp.sin(gx)) + jnp.sum(jnp.cos(gw))
    return f

  taps = lambda x, w: conv.depthwise_conv_edges(x, w, stride, dilation, impl)
  ref = lambda x, w: _grouped_reference(x, w, stride, dilation)
  grads = jax.grad(outer(taps), (0, 1))(x, w)
  ref_grads = jax.grad(outer(ref), (0, 1))(x, w)
  for g, r in zip(grads, ref_grads):
    assert g.dtype == jnp.float64
    np.testing.assert_allclose(g, r, rtol=1e-9, atol=1e-9)


def test_loop_program_grows_slowly_with_kernel_size():
  """'loop' unrolls one kernel row (k taps) in its loop body, 'slices' all k*k taps."""

  def hlo_size(k, impl):
    x, w = _inputs(True, k)
    fn = jax.grad(lambda x, w: jnp.sum(conv.depthwise_conv_edges(x, w, 1, 1, impl)), (0, 1))
    return len(jax.jit(fn).lower(x, w).as_text())

  assert hlo_size(7, 'loop') < 1.5 * hlo_size(3, 'loop')
  assert hlo_size(7, 'slices') > 3 * hlo_size(3, 'slices')


def test_cpu_default_is_slices():
  assert jax.default_backend() == 'cpu'
  assert conv.resolve_impl('auto') == 'slices'
  with pytest.raises(ValueError, match='unknown depthwise impl'):
    conv.resolve_impl('grouped')

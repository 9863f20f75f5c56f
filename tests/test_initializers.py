"""The host-side init draws every parameter as flax's initializers would."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from darts_jax import configs
from darts_jax import data
from darts_jax.methods.base import Forward
from darts_jax.nn import initializers
from darts_jax.nn.initializers import Spec
from darts_jax.spaces.darts import eval_network
from darts_jax.spaces.darts import eval_ops
from darts_jax.spaces.darts import zoo
from darts_jax.train import augment
from darts_jax.train import parts as train_parts

SPECS = [
    # (spec, shape as the module asks for it): PyTorch-default depthwise and pointwise
    # kernels of a group of 4 search-cell edges, kaiming (NAS-Bench-201 cells), a dense
    # conv, PyTorch's default and bias inits, lecun normal.
    (Spec('fan_in', 1 / 3, 'uniform', in_axis=(1, 2), batch_axis=(0,)), (4, 5, 5, 512)),
    (Spec('fan_in', 1 / 3, 'uniform', in_axis=1, batch_axis=(0,)), (4, 64, 256)),
    (Spec('fan_in', 2.0, in_axis=(1, 2)), (1, 5, 5, 2048)),
    (Spec('fan_in', 2.0, in_axis=1), (1, 64, 1024)),
    (Spec('fan_in', 2.0, in_axis=(0, 1, 2)), (3, 3, 48, 128)),
    (Spec('fan_in', 1 / 3, 'uniform'), (3, 3, 36, 144)),
    (Spec('fan_in', 1.0), (256, 200)),
    (Spec('uniform', bound=0.125), (50000,)),
]


@pytest.mark.parametrize('spec,shape', SPECS)
def test_spec_draws_like_flax(spec, shape):
  """Same spread and range as the flax initializer the spec names, on the same shape."""
  flax_values = np.asarray(spec.flax_initializer()(jax.random.key(0), shape, jnp.float32))
  host_values = spec.sample(np.random.default_rng(0), shape, shape)
  assert host_values.shape == shape and host_values.dtype == np.float32
  np.testing.assert_allclose(host_values.std(), flax_values.std(), rtol=0.03)
  assert abs(host_values.mean()) < 0.03 * flax_values.std()
  # The truncated normals stop at 2 standard deviations, the uniforms at their bound.
  limit = np.abs(flax_values).max()
  assert np.abs(host_values).max() <= limit * 1.01
  assert np.abs(host_values).max() >= limit * 0.95


def test_grouped_edges_get_pytorchs_bound_of_one_edge():
  """uniform(+-1 / sqrt(fan_in)) with PyTorch's fan in of one edge's kernel: a depthwise
  [C, 1, k, k] kernel has k * k, a 1x1 [C_out, C_in, 1, 1] kernel C_in."""
  for in_axes, shape, fan_in in (((1, 2), (4, 5, 5, 512), 25), (1, (4, 64, 256), 64)):
    values = np.asarray(initializers.torch_default_over(in_axes)(
        jax.random.key(0), shape, jnp.float32))
    assert 0.99 / fan_in ** 0.5 < np.abs(values).max() <= 1 / fan_in ** 0.5


def test_stacked_axes_keep_the_fan_in_of_one_slice():
  spec = Spec('fan_in', 2.0, in_axis=(1, 2))
  base = (1, 3, 3, 4000)
  values = spec.sample(np.random.default_rng(1), (14,) + base, base)
  np.testing.assert_allclose(values.std(), np.sqrt(2.0 / 9), rtol=0.03)
  box = initializers.SpecBox(jnp.zeros((14,) + base), spec).add_axis(0, {})
  assert box.base_shape((14,) + base) == base
  assert box.remove_axis(0, {}).stacked == ()


def _compare_with_flax(host_vars, flax_vars):
  assert jax.tree.structure(host_vars) == jax.tree.structure(flax_vars)
  for (path, h), f in zip(jax.tree_util.tree_leaves_with_path(host_vars),
                          jax.tree.leaves(flax_vars)):
    name = jax.tree_util.keystr(path)
    h, f = np.asarray(h), np.asarray(f)
    assert h.shape == f.shape and h.dtype == f.dtype, name
    if f.std() == 0:  # Constants: batch statistics, BatchNorm scales and biases.
      np.testing.assert_array_equal(h, f, err_msg=name)
    elif f.size >= 256:
      assert 0.8 < h.std() / f.std() < 1.25, name


def test_search_network_matches_flax_init():
  config = configs.search_tiny_config()
  info = data.get_info(config.dataset.name)
  parts = train_parts.SearchParts.from_config(config, info.num_classes)
  model = parts.model
  state = parts.init_state(info.image_shape)
  x = jnp.zeros((1,) + info.image_shape, jnp.float32)
  weights = parts.method.edge_weights(state['alphas'], Forward.VALIDATION, None, 0)
  flax_vars = jax.jit(lambda k: model.init(k, x, weights, train=True))(jax.random.key(1))
  _compare_with_flax({'params': state['params'], 'batch_stats': state['batch_stats']},
                     flax_vars)
  # The scanned edges' stacked kernels: one independent draw per edge.
  stacked = [v for p, v in jax.tree_util.tree_leaves_with_path(state['params'])
             if 'depthwise' in jax.tree_util.keystr(p)][0]
  assert stacked.shape[0] > 1
  assert not np.allclose(stacked[0], stacked[1])
  assert all(not np.any(m) for m in jax.tree.leaves(state['momentum']))


def test_evaluation_network_matches_flax_init():
  config = configs.augment_digits_config()
  info = data.get_info(config.dataset.name)
  genotype = zoo.load_genotype(config.genotype, known_ops=tuple(eval_ops.AUGMENT_OPS))
  model = eval_network.build_augment_model(config.model, genotype, info.num_classes)
  state = augment.init_state(model, info.image_shape, config.seed)
  x = jnp.zeros((1,) + info.image_shape, jnp.float32)
  flax_vars = jax.jit(lambda k: model.init(k, x, train=True))(jax.random.key(1))
  _compare_with_flax({'params': state['params'], 'batch_stats': state['batch_stats']},
                     flax_vars)


def test_host_init_is_a_function_of_the_seed():
  config = configs.search_tiny_config()
  info = data.get_info(config.dataset.name)
  init = lambda: train_parts.SearchParts.from_config(config, info.num_classes).init_state(
      info.image_shape)['params']
  a, b = (init() for _ in range(2))
  jax.tree.map(np.testing.assert_array_equal, a, b)
  config.seed += 1
  c = init()
  assert any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(c))
             if np.std(x) > 0)


def test_a_parameter_from_another_initializer_falls_back_to_the_flax_init():
  """A user-registered op with flax's own initializers still initialises (jitted, slower)."""

  class Plain(nn.Module):

    @nn.compact
    def __call__(self, x):
      scale = self.param('scale', nn.initializers.normal(1.0), (x.shape[-1],))
      shift = self.param('shift', initializers.zeros, (x.shape[-1],))
      return x * scale + shift

  model = Plain()
  init = lambda k: model.init(k, jnp.zeros((2, 3)))
  variables = initializers.host_init(init, jax.random.key(0), 0)
  expected = jax.tree_util.tree_leaves_with_path(init(jax.random.key(0)))
  got = jax.tree_util.tree_leaves_with_path(variables)
  assert [p for p, _ in got] == [p for p, _ in expected]
  for (_, g), (_, e) in zip(got, expected):
    np.testing.assert_array_equal(g, e)
  assert np.std(variables['params']['scale']) > 0

"""Search methods (darts_jax/methods/): edge weights, supernet options, hooks.

Unit tests of each built-in method's maths; tests/test_plugins.py runs every registered
method in every registered space end to end.
"""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from darts_jax import methods
from darts_jax import spaces
from darts_jax.configs import benchmarks
from darts_jax.errors import UserError
from darts_jax.methods import gdas
from darts_jax.methods import pc_darts
from darts_jax.methods.base import Forward
from darts_jax.nn import initializers
from darts_jax.spaces import mixed_edges
from darts_jax.spaces.darts import genotype as genotypes
from darts_jax.train import parts as train_parts


def cfg(method='darts', tiny=True):
  return benchmarks.search_cifar10(method + (',tiny' if tiny else ''))


def method_of(config):
  return methods.from_config(config, spaces.from_config(config))


# ---------------------------------------------------------------------------
# Edge weights.


def test_darts_init_and_weights_are_the_reference_codes():
  """1e-3 * N(0, 1) per cell type from one key split (the reference's _initialize_alphas),
  softmax edge weights in every forward."""
  method = method_of(cfg('darts', tiny=False))
  key = jax.random.key(3)
  a = method.init_alphas(key)
  kn, kr = jax.random.split(key)
  np.testing.assert_array_equal(a['normal'], 1e-3 * jax.random.normal(kn, (14, 8)))
  np.testing.assert_array_equal(a['reduce'], 1e-3 * jax.random.normal(kr, (14, 8)))
  for forward in Forward:
    w = method.edge_weights(a, forward, key, 0)
    np.testing.assert_array_equal(w['normal'], jax.nn.softmax(a['normal'], -1))


def test_gdas_forward_is_one_hot_and_gradient_only_through_sampled_op():
  alpha = jnp.array([[0.1, 0.5, -0.2, 0.0], [1.0, 0.0, 0.0, 0.0]])
  key = jax.random.key(0)
  tau = 0.5
  w = gdas.gumbel_hard(key, alpha, tau)
  assert set(np.unique(np.asarray(w))) <= {0.0, 1.0}
  np.testing.assert_array_equal(np.sum(w, -1), [1.0, 1.0])
  # d/dalpha of sum(c * w) equals the gradient of the sampled soft probability only.
  c = jnp.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
  g = jax.grad(lambda a: jnp.sum(c * gdas.gumbel_hard(key, a, tau)))(alpha)
  sampled = jnp.argmax(w, -1)

  def soft(a):
    gum = jax.random.gumbel(key, a.shape, a.dtype)
    return jax.nn.softmax((jax.nn.log_softmax(a, -1) + gum) / tau, -1)

  expect = jax.grad(lambda a: jnp.sum(jnp.take_along_axis(c * soft(a), sampled[:, None], 1)))(
      alpha)
  np.testing.assert_allclose(g, expect, rtol=1e-5, atol=1e-7)


def test_gdas_every_op_form_passes_gradient_to_every_soft_probability():
  """AutoDL's `one_h - probs.detach() + probs` (NAS-Bench-201): same one-hot value."""
  alpha = jnp.array([[0.1, 0.5, -0.2, 0.0], [1.0, 0.0, 0.0, 0.0]])
  key, tau = jax.random.key(0), 0.5
  w = gdas.gumbel_hard(key, alpha, tau, every_op=True)
  np.testing.assert_array_equal(w, gdas.gumbel_hard(key, alpha, tau))
  c = jnp.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
  g = jax.grad(lambda a: jnp.sum(c * gdas.gumbel_hard(key, a, tau, every_op=True)))(alpha)

  def soft(a):
    gum = jax.random.gumbel(key, a.shape, a.dtype)
    return jax.nn.softmax((jax.nn.log_softmax(a, -1) + gum) / tau, -1)

  np.testing.assert_allclose(g, jax.grad(lambda a: jnp.sum(c * soft(a)))(alpha), rtol=1e-5,
                             atol=1e-7)
  assert method_of(benchmarks.search_nb201('gdas')).supernet_options().unsampled_passthrough
  assert not method_of(cfg('gdas', tiny=False)).supernet_options().unsampled_passthrough


def test_unsampled_passthrough_is_autodls_nb201_gdas_cell():
  """Edge output = w_s * op_s(x) + sum of the unsampled w_k: the same value; an unsampled
  op's weight gets the sum of the output gradient, the sampled op's the usual one."""
  x = jax.random.normal(jax.random.key(0), (2, 6, 6, 4))
  w = jnp.array([[0., 0., 1., 0.], [0., 0., 0., 1.]])
  plain, autodl = _edges(), _edges(unsampled_passthrough=True)
  proj = jax.random.normal(jax.random.key(2), (2, 2, 6, 6, 4))
  v = initializers.host_init(lambda k: plain.init(k, x, w, True), jax.random.key(1), 1)

  def loss_and_weight_grad(m):
    def loss(w):
      return jnp.sum(m.apply(v, x, w, False) * proj)
    return jax.jit(jax.value_and_grad(loss))(w)

  (lp, gp), (la, ga) = loss_and_weight_grad(plain), loss_and_weight_grad(autodl)
  np.testing.assert_allclose(la, lp, rtol=1e-6)
  sampled = np.asarray(w) == 1
  np.testing.assert_allclose(np.asarray(ga)[sampled], np.asarray(gp)[sampled], rtol=1e-5)
  edge_sums = np.asarray(jnp.sum(proj, axis=(1, 2, 3, 4)))
  np.testing.assert_allclose(np.asarray(ga)[~sampled].reshape(2, 3),
                             np.repeat(edge_sums[:, None], 3, axis=1), rtol=1e-5)


def test_gdas_temperature_is_linear_from_tau_max_to_tau_min():
  config = cfg('gdas', tiny=False)
  config.train.epochs = 11
  method = method_of(config)
  taus = [float(method.tau(e)) for e in range(11)]
  np.testing.assert_allclose(taus[0], 10.0)
  np.testing.assert_allclose(taus[-1], 0.1, rtol=1e-5)
  np.testing.assert_allclose(np.diff(taus), -0.99, rtol=1e-5)


def test_gdas_eval_and_derivation():
  method = method_of(cfg('gdas', tiny=False))
  a = method.init_alphas(jax.random.key(1))
  w = method.edge_weights(a, Forward.VALIDATION, None, 0)
  np.testing.assert_array_equal(np.argmax(w['normal'], -1), np.argmax(a['normal'], -1))
  assert np.all(np.sum(w['normal'], -1) == 1)


def test_drnas_dirichlet_sample_gradient_and_mean():
  config = cfg('drnas', tiny=False)
  method = method_of(config)
  a = method.init_alphas(jax.random.key(1))
  fn = lambda alphas: method.edge_weights(alphas, Forward.WEIGHT_STEP, jax.random.key(2), 0)
  w = fn(a)
  np.testing.assert_allclose(np.sum(w['normal'], -1), 1.0, rtol=1e-5)
  assert np.all(np.asarray(w['normal']) >= 0)
  # Reparameterized: the sample depends on alpha through implicit gamma gradients.
  g = jax.grad(lambda a: jnp.sum(fn(a)['normal'] * jnp.arange(8.0)))(a)
  assert np.all(np.isfinite(g['normal'])) and np.abs(g['normal']).max() > 0
  # DrNAS's default regularizer is the alphas' Adam weight decay 1e-3 (reg_type 'l2').
  assert config.arch.weight_decay == 1e-3 and 'reg_scale' not in config.method
  # Derivation ranks the Dirichlet mean c / sum(c) of c = softplus(a) + eps, not a softmax.
  an = np.asarray(a['normal'], np.float64)
  conc = np.log1p(np.exp(an)) + config.method.dirichlet_eps
  mean = method.derivation_weights(a)['normal']
  np.testing.assert_allclose(mean, conc / conc.sum(-1, keepdims=True), rtol=1e-5)


def test_pc_darts_edge_normalization():
  method = method_of(cfg('pc_darts', tiny=False))
  a = method.init_alphas(jax.random.key(1))
  assert a['normal_beta'].shape == (14,)
  dst = method.space.edge_destinations()
  beta = pc_darts.edge_softmax(a['normal_beta'] * 100, dst)
  for node in range(2, 6):
    np.testing.assert_allclose(np.sum(beta[dst == node]), 1.0, rtol=1e-5)
  w = method.derivation_weights(a)['normal']
  expect = np.asarray(jax.nn.softmax(a['normal'], -1) * pc_darts.edge_softmax(
      a['normal_beta'], dst)[:, None])
  np.testing.assert_allclose(w, expect, rtol=1e-6)


def test_arch_start_epoch_freezes_alphas():
  method = method_of(cfg('pc_darts', tiny=False))
  new, old = {'a': jnp.ones(2)}, {'a': jnp.zeros(2)}
  np.testing.assert_array_equal(method.gate_alpha_update(14, new, old)['a'], 0)
  np.testing.assert_array_equal(method.gate_alpha_update(15, new, old)['a'], 1)


def test_random_path_is_a_genotype():
  config = cfg('random_ws', tiny=False)
  method = method_of(config)
  space = method.space
  prims = space.primitives
  for seed in range(5):
    path = space.random_path(jax.random.key(seed))
    for cell in ('normal', 'reduce'):
      p = np.asarray(path[cell])
      assert p[:, 0].sum() == 0  # never 'none'
      start = 0
      for node in range(4):
        assert p[start:start + node + 2].sum() == 2
        start += node + 2
    g = space.derive(method.derivation_weights(path))
    genotypes.validate_genotype(g)
    # The derived cell is exactly the path's edges.
    for cell, pairs in (('normal', g.normal), ('reduce', g.reduce)):
      edges = genotypes.edge_list(4)
      chosen = {(edges[r][0], edges[r][1], prims[int(np.argmax(path[cell][r]))])
                for r in range(14) if np.asarray(path[cell][r]).sum() > 0}
      assert chosen == {(i // 2, src, op) for i, (op, src) in enumerate(pairs)}
  assert space.random_arch(0).normal


def test_config_errors_are_clear():
  config = cfg('darts', tiny=False)
  config.method.name = 'enas'
  with pytest.raises(UserError, match="unknown config.method.name 'enas'; registered search "
                                      'methods: darts, gdas'):
    method_of(config)
  config = cfg('pc_darts', tiny=False)
  config.method.partial_channels = 3
  with pytest.raises(UserError, match='partial_channels'):
    method_of(config)
  with pytest.raises(ValueError, match='unknown method'):
    benchmarks.parse_arg('gdaz')


def test_update_order_and_sgd_follow_each_methods_official_trainer():
  """AutoDL's GDAS and NAS-Bench-201 trainers: weights first, Nesterov; DARTS, PC-DARTS
  and DrNAS: alphas first, plain momentum (DrNAS's NAS-Bench-201 weight decay 3e-4)."""
  def settings(config):
    return config.arch.update_order, config.train.nesterov, config.train.weight_decay

  assert settings(cfg('darts', tiny=False)) == ('alphas_first', False, 3e-4)
  assert settings(cfg('pc_darts', tiny=False)) == ('alphas_first', False, 3e-4)
  assert settings(cfg('gdas', tiny=False)) == ('weights_first', True, 5e-4)
  for name in ('darts', 'gdas', 'pc_darts', 'random_ws'):
    assert settings(benchmarks.search_nb201(name)) == ('weights_first', True, 5e-4)
  assert settings(benchmarks.search_nb201('drnas')) == ('alphas_first', False, 3e-4)
  train = benchmarks.augment_nb201().train
  assert (train.nesterov, train.grad_clip) == (True, 0.0)


# ---------------------------------------------------------------------------
# Supernet options.


def _edges(**kw):
  return mixed_edges.MixedEdges(('none', 'skip_connect', 'avg_pool_3x3', 'sep_conv_3x3'), 4, 1,
                                2, options=spaces.SupernetOptions(**kw))


def test_skip_unused_ops_gives_the_same_output_and_gradients():
  x = jax.random.normal(jax.random.key(0), (2, 6, 6, 4))
  w = jnp.array([[0., 0., 1., 0.], [0., 1., 0., 0.]])  # No edge uses sep_conv.
  dense, sparse = _edges(), _edges(skip_unused_ops=True)
  proj = jax.random.normal(jax.random.key(2), (2, 2, 6, 6, 4))  # Gradients of O(1).
  v = initializers.host_init(lambda k: dense.init(k, x, w, True), jax.random.key(1), 1)
  assert jax.tree.structure(v) == jax.tree.structure(
      jax.eval_shape(lambda: sparse.init(jax.random.key(1), x, w, True)))

  def run(m, w):
    def f(p, w):
      y, upd = m.apply({'params': p, 'batch_stats': v['batch_stats']}, x, w, True,
                       mutable=['batch_stats'])
      return jnp.sum(y * proj), upd
    return jax.jit(jax.value_and_grad(f, argnums=(0, 1), has_aux=True))(v['params'], w)

  for weights in (w, jnp.array([[0., 0., 0., 1.], [0., 1., 0., 0.]])):
    (ld, ud), gd = run(dense, weights)
    (ls, us), gs = run(sparse, weights)
    np.testing.assert_allclose(ld, ls, rtol=1e-4)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4),
                 gd[0], gs[0])
    # Weight gradients agree for every op some edge uses (a skipped op's column gets 0;
    # the methods' one-hot weights pass no gradient to unsampled entries anyway).
    used = np.any(np.asarray(weights) != 0, axis=0)
    np.testing.assert_allclose(np.asarray(gd[1])[:, used], np.asarray(gs[1])[:, used],
                               rtol=1e-3, atol=1e-4)
    assert np.all(np.asarray(gs[1])[:, ~used] == 0)
  # sep_conv unused: its batch statistics are not updated.
  (_, us), _ = run(sparse, w)
  np.testing.assert_array_equal(
      jax.tree.leaves(us['batch_stats']['SepConv_0'])[0],
      jax.tree.leaves(v['batch_stats']['SepConv_0'])[0])


def test_partial_channels_bypass_and_shuffle():
  x = jax.random.normal(jax.random.key(0), (2, 6, 6, 4))
  w = jnp.array([[0.2, 0.3, 0.1, 0.4], [0.5, 0.1, 0.2, 0.2]]) * jnp.array([[0.5], [2.0]])
  m = _edges(partial_channels=2)
  v = initializers.host_init(lambda k: m.init(k, x, w, True), jax.random.key(1), 1)
  y, _ = jax.jit(lambda v: m.apply(v, x, w, True, mutable=['batch_stats']))(v)
  assert y.shape == (2, 2, 6, 6, 4)
  # Ops see 2 channels; the other 2 bypass, scaled by the edge's weight sum, and are
  # shuffled to odd positions.
  assert v['params']['SepConv_0']['EdgeDepthwiseSeparable_0']['pointwise'].shape == (2, 2, 2)
  np.testing.assert_allclose(y[0, ..., 1::2], 0.5 * x[..., 2:], rtol=1e-6)
  np.testing.assert_allclose(y[1, ..., 1::2], 2.0 * x[..., 2:], rtol=1e-6)
  np.testing.assert_array_equal(mixed_edges.channel_shuffle(jnp.arange(6.0), 2),
                                [0, 3, 1, 4, 2, 5])


def test_method_networks_have_darts_parameter_shapes_except_pc_darts():
  info_shape = (1, 8, 8, 1)
  shapes = {}
  for name in ('darts', 'gdas', 'pc_darts'):
    parts = train_parts.SearchParts.from_config(cfg(name), 10)
    model, method = parts.model, parts.method
    a = method.init_alphas(jax.random.key(0))
    v = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(info_shape),
                                          method.edge_weights(a, Forward.VALIDATION, None, 0),
                                          train=True))
    shapes[name] = jax.tree.map(lambda s: s.shape, v['params'])
  assert shapes['darts'] == shapes['gdas']
  assert shapes['darts'] != shapes['pc_darts']

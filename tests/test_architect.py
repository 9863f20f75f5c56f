"""Hypergradients: exact second order against finite differences, on a small model,
and against reverse-over-reverse autodiff on a tiny supernet.

The small model is a two-layer network whose hidden layer mixes two candidate
nonlinearities with softmax(alpha) weights: small enough to check in float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from darts_jax import architect
from darts_jax import configs
from darts_jax import data
from darts_jax import search

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


def test_alpha_grad_dispatch():
  params, alphas, train, val, buffer = _problem()
  second = (_loss_fn, params, alphas, train, val, XI, buffer, MOMENTUM, WEIGHT_DECAY)
  expected = {'first': architect.first_order_grad(_loss_fn, params, alphas, val),
              'second_exact': architect.second_order_exact_grad(*second),
              'second_fd': architect.second_order_fd_grad(*second)}
  assert set(expected) == set(architect.ORDERS)
  for order, (want, want_loss, _) in expected.items():
    grads, loss, _ = architect.alpha_grad(order, *second)
    np.testing.assert_array_equal(grads['mix'], want['mix'], err_msg=order)
    assert float(loss) == float(want_loss)
  # The three orders differ on this problem, so a wrong dispatch would show.
  assert not np.allclose(expected['first'][0]['mix'], expected['second_exact'][0]['mix'])
  assert not np.array_equal(expected['second_fd'][0]['mix'],
                            expected['second_exact'][0]['mix'])


@pytest.mark.parametrize('order', ['second_exact', 'second_fd'])
def test_precomputed_train_grads_give_the_same_hypergradient(order):
  with jax.enable_x64(True):
    params, alphas, train, val, buffer = _f64(_problem())
    train_grads = jax.grad(lambda p: _loss_fn(p, alphas, train)[0])(params)
    args = (order, _loss_fn, params, alphas, train, val, XI, buffer, MOMENTUM, WEIGHT_DECAY)
    computed, loss, _ = architect.alpha_grad(*args)
    reused, reused_loss, _ = architect.alpha_grad(*args, train_grads=train_grads)
  np.testing.assert_allclose(reused['mix'], computed['mix'], rtol=1e-12)
  np.testing.assert_allclose(reused_loss, loss, rtol=1e-12)
  # The given gradient is the one used: another one gives another w' and hypergradient.
  with jax.enable_x64(True):
    doubled, _, _ = architect.alpha_grad(
        *args, train_grads=jax.tree.map(lambda g: 2 * g, train_grads))
  assert not np.allclose(doubled['mix'], computed['mix'], rtol=1e-6)


def _tiny_supernet_config(order='second'):
  config = configs.search_config(order)
  config.dataset.name = 'digits'
  config.search_space.primitives = ['none', 'max_pool_3x3', 'skip_connect', 'sep_conv_3x3',
                                    'dil_conv_3x3']
  config.model.init_channels = 4
  config.model.layers = 2
  return config


def test_shared_train_grad_steps_the_weights_at_the_old_alphas():
  """config.arch.share_train_grad: the same alpha step as DARTS's; the weights move by
  the train gradient at the alphas before the update instead of after it."""
  config = _tiny_supernet_config('second_fd')  # Compiles faster than exact; same sharing.
  config.search_space.primitives = ['skip_connect', 'sep_conv_3x3']
  config.train.crop_padding = 0  # The step's preprocessing is then normalization only.
  info = data.get_info('digits')
  model = search.build_model(config, info.num_classes)
  state = search.init_state(model, config, info)
  ks = jax.random.split(jax.random.key(5), 4)
  batch = lambda k1, k2: {
      'image': jax.random.randint(k1, (8,) + info.image_shape, 0, 256).astype(jnp.uint8),
      'label': jax.random.randint(k2, (8,), 0, info.num_classes)}
  train, val = batch(*ks[:2]), batch(*ks[2:])
  steps = {}
  for shared in (False, True):
    step_config = config.copy_and_resolve_references()
    step_config.arch.share_train_grad = shared
    steps[shared] = jax.jit(search.make_search_step(model, step_config, info,
                                                    steps_per_epoch=10))
  darts_state, _ = steps[False](state, train, val)
  shared_state, shared_metrics = steps[True](state, train, val)

  for name in state['alphas']:
    np.testing.assert_allclose(shared_state['alphas'][name], darts_state['alphas'][name],
                               rtol=1e-6, atol=1e-9)
  loss_fn = search.make_loss_fn(model, state['batch_stats'])
  normalized = search.preprocess(None, train, info, 0)
  t = config.train

  def weight_step(alphas):
    (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state['params'], alphas, normalized)
    params, _ = search.sgd_momentum_update(
        state['params'], grads, state['momentum'], search.cosine_lr(config, 0), t.momentum,
        t.weight_decay, t.grad_clip)
    return loss, params

  old_loss, at_old_alphas = jax.jit(weight_step)(state['alphas'])
  _, at_new_alphas = jax.jit(weight_step)(darts_state['alphas'])
  np.testing.assert_allclose(shared_metrics['train_loss'], old_loss, rtol=1e-6)
  flat = lambda tree: architect.flat_float32(tree)
  np.testing.assert_allclose(flat(shared_state['params']), flat(at_old_alphas),
                             rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(flat(darts_state['params']), flat(at_new_alphas),
                             rtol=1e-5, atol=1e-7)
  # The two weight steps differ, so the comparisons above tell them apart.
  assert float(jnp.max(jnp.abs(flat(at_old_alphas) - flat(at_new_alphas)))) > 1e-6


def test_shared_train_grad_is_refused_where_it_cannot_apply():
  info = data.get_info('digits')
  first = _tiny_supernet_config('first')
  first.arch.share_train_grad = True
  with pytest.raises(search.UserError, match='only in second order'):
    search.check_config(first, info, 1, 1)
  gdas = _tiny_supernet_config()
  gdas.arch.share_train_grad = True
  gdas.method.name = 'gdas'
  with pytest.raises(search.UserError, match='use method darts or pc_darts'):
    search.check_config(gdas, info, 1, 1)


def test_exact_second_order_on_the_supernet_matches_reverse_over_reverse():
  """The supernet's exact hypergradient (forward-over-reverse through the scanned,
  rematerialized cells and the depthwise tap primitives) against JAX differentiating
  the unrolled validation loss in reverse mode twice: two independent autodiff paths."""
  config = _tiny_supernet_config()
  info = data.get_info('digits')
  model = search.build_model(config, info.num_classes)
  state = search.init_state(model, config, info)
  loss_fn = search.make_loss_fn(model, state['batch_stats'])
  ks = jax.random.split(jax.random.key(3), 4)
  batch = lambda k1, k2: {'image': jax.random.normal(k1, (8,) + info.image_shape),
                          'label': jax.random.randint(k2, (8,), 0, info.num_classes)}
  train, val = batch(*ks[:2]), batch(*ks[2:])
  params, alphas = state['params'], state['alphas']
  buffer = jax.tree.map(lambda p: 0.1 * jnp.ones_like(p), params)

  @jax.jit
  def both(params, alphas, buffer):
    exact, _, _ = architect.second_order_exact_grad(
        loss_fn, params, alphas, train, val, XI, buffer, MOMENTUM, WEIGHT_DECAY)

    def unrolled(a):
      w_prime = architect.virtual_step(loss_fn, params, a, train, XI, buffer, MOMENTUM,
                                       WEIGHT_DECAY)
      return loss_fn(w_prime, a, val)[0]

    direct = architect.first_order_grad(loss_fn, architect.virtual_step(
        loss_fn, params, alphas, train, XI, buffer, MOMENTUM, WEIGHT_DECAY), alphas, val)[0]
    return exact, jax.grad(unrolled)(alphas), direct

  exact, reference, direct = both(params, alphas, buffer)
  for name in exact:
    scale = float(jnp.max(jnp.abs(reference[name])))
    np.testing.assert_allclose(exact[name], reference[name], rtol=1e-4, atol=1e-4 * scale)
    # The implicit term is not negligible, so the comparison checks it.
    assert float(jnp.max(jnp.abs(reference[name] - direct[name]))) > 1e-3 * scale

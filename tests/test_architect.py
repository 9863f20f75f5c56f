"""Hypergradients: exact second order against finite differences, on a small model,
and against reverse-over-reverse autodiff on a tiny supernet.

The small model is a two-layer network whose hidden layer mixes two candidate
nonlinearities with softmax(alpha) weights: small enough to check in float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from darts_jax import configs
from darts_jax import data
from darts_jax.errors import UserError
from darts_jax.optim import architect
from darts_jax.optim import sgd
from darts_jax.train import parts as train_parts
from darts_jax.train import settings
from darts_jax.train import steps as train_steps


def softmax_weights(alphas):
  return jax.tree.map(lambda a: jax.nn.softmax(a, axis=-1), alphas)


def loss_fn_of(model, batch_stats):
  """The supernet's loss with DARTS's softmax edge weights, in float32."""
  return train_steps.make_loss_fn(model, batch_stats, jnp.float32, softmax_weights)


def search_step_of(config, info, steps_per_epoch=10):
  return train_parts.SearchParts.from_config(config, info.num_classes).search_step(
      info, steps_per_epoch)


def lr_at_epoch_0(config):
  return settings.WeightOptimizer.from_config(config.train).learning_rate(0)

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
    exact = architect.second_order_exact_grad(
        _loss_fn, params, alphas, train, val, XI, buffer, MOMENTUM, WEIGHT_DECAY).grads

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
    exact = architect.second_order_exact_grad(*args).grads
    fd = architect.second_order_fd_grad(*args).grads
    first = architect.first_order_grad(_loss_fn, params, alphas, val).grads
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
  for order, (want, want_loss, _, _) in expected.items():
    grads, loss, _, _ = architect.alpha_grad(order, *second)
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
    computed, loss, _, _ = architect.alpha_grad(*args)
    reused, reused_loss, _, _ = architect.alpha_grad(*args, train_grads=train_grads)
  np.testing.assert_allclose(reused['mix'], computed['mix'], rtol=1e-12)
  np.testing.assert_allclose(reused_loss, loss, rtol=1e-12)
  # The given gradient is the one used: another one gives another w' and hypergradient.
  with jax.enable_x64(True):
    doubled = architect.alpha_grad(
        *args, train_grads=jax.tree.map(lambda g: 2 * g, train_grads)).grads
  assert not np.allclose(doubled['mix'], computed['mix'], rtol=1e-6)


def test_forward_auxes_are_the_forwards_the_darts_code_runs_on_its_network():
  """First order: the validation forward at w. Second order: the virtual step's train
  forward at w, then the finite difference's at w + R v and w - R v (R v of norm 0.01),
  or the exact product's at w twice (the limit R -> 0); given train_grads, the caller
  ran the virtual step's forward. The aux here is (batch inputs, weights) of the forward."""
  loss_fn = lambda p, a, batch: (_loss_fn(p, a, batch)[0], (batch['x'], p))
  params, alphas, train, val, buffer = _problem()
  args = (loss_fn, params, alphas, train, val, XI, buffer, MOMENTUM, WEIGHT_DECAY)
  flat = architect.flat_float32
  same = lambda aux, batch, weights: (np.array_equal(aux[0], batch['x'])
                                      and np.array_equal(flat(aux[1]), flat(weights)))

  (first_aux,) = architect.alpha_grad('first', *args).forward_auxes
  assert same(first_aux, val, params)
  exact = architect.alpha_grad('second_exact', *args).forward_auxes
  assert len(exact) == 3 and all(same(aux, train, params) for aux in exact)
  at_w, plus, minus = architect.alpha_grad('second_fd', *args).forward_auxes
  assert same(at_w, train, params)
  assert np.array_equal(plus[0], train['x']) and np.array_equal(minus[0], train['x'])
  step = flat(plus[1]) - flat(params)
  np.testing.assert_allclose(jnp.linalg.norm(step), architect.FD_EPSILON, rtol=1e-4)
  np.testing.assert_allclose(flat(minus[1]) - flat(params), -step, atol=1e-6)

  train_grads = jax.grad(lambda p: _loss_fn(p, alphas, train)[0])(params)
  shared = {order: architect.alpha_grad(order, *args, train_grads=train_grads).forward_auxes
            for order in ('second_exact', 'second_fd')}
  assert len(shared['second_exact']) == 2
  assert all(same(aux, train, params) for aux in shared['second_exact'])
  assert [flat(aux[1]).tolist() for aux in shared['second_fd']] == [
      flat(plus[1]).tolist(), flat(minus[1]).tolist()]


def _tiny_supernet_config(order='second'):
  config = configs.search_config(order)
  config.dataset.name = 'digits'
  config.search_space.primitives = ['none', 'max_pool_3x3', 'skip_connect', 'sep_conv_3x3',
                                    'dil_conv_3x3']
  config.model.init_channels = 4
  config.model.layers = 2
  return config


def _two_op_supernet_step_inputs(order, seed):
  """(config, info, model, state, train batch, val batch) of a 2-op tiny supernet whose
  step preprocessing is normalization only (no crop)."""
  config = _tiny_supernet_config(order)
  config.search_space.primitives = ['skip_connect', 'sep_conv_3x3']
  config.train.crop_padding = 0
  info = data.get_info('digits')
  search_parts = train_parts.SearchParts.from_config(config, info.num_classes)
  model, state = search_parts.model, search_parts.init_state(info.image_shape)
  ks = jax.random.split(jax.random.key(seed), 4)
  batch = lambda k1, k2: {
      'image': jax.random.randint(k1, (8,) + info.image_shape, 0, 256).astype(jnp.uint8),
      'label': jax.random.randint(k2, (8,), 0, info.num_classes)}
  return config, info, model, state, batch(*ks[:2]), batch(*ks[2:])


@pytest.mark.slow
def test_shared_train_grad_steps_the_weights_at_the_old_alphas():
  """config.arch.share_train_grad: the same alpha step as DARTS's; the weights move by
  the train gradient at the alphas before the update instead of after it."""
  # second_fd compiles faster than exact; the sharing is the same.
  config, info, model, state, train, val = _two_op_supernet_step_inputs('second_fd', 5)
  steps = {}
  for shared in (False, True):
    step_config = config.copy_and_resolve_references()
    step_config.arch.share_train_grad = shared
    steps[shared] = jax.jit(search_step_of(step_config, info))
  darts_state, _ = steps[False](state, train, val)
  shared_state, shared_metrics = steps[True](state, train, val)

  for name in state['alphas']:
    np.testing.assert_allclose(shared_state['alphas'][name], darts_state['alphas'][name],
                               rtol=1e-6, atol=1e-9)
  loss_fn = loss_fn_of(model, state['batch_stats'])
  normalized = train_steps.preprocess(None, train, info, 0)
  t = config.train

  def weight_step(alphas):
    (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state['params'], alphas, normalized)
    params, _ = sgd.sgd_momentum_update(
        state['params'], grads, state['momentum'], lr_at_epoch_0(config), t.momentum,
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


@pytest.mark.slow
def test_second_order_step_moves_the_running_stats_as_the_darts_code_does():
  """The DARTS code's second-order step runs four training-mode forwards on its network,
  each moving the running BN statistics: the virtual step's at w, the finite
  difference's at w + R v and w - R v, then the weight step's at the new alphas. Here
  the same forwards, written out one after another, against one search step."""
  config, info, model, state, train, val = _two_op_supernet_step_inputs('second_fd', 7)
  new_state, _ = jax.jit(search_step_of(config, info))(state, train, val)
  norm_train, norm_val = (train_steps.preprocess(None, b, info, 0) for b in (train, val))
  t = config.train
  xi = lr_at_epoch_0(config)

  def train_forward(weights, alphas, stats):
    (_, (_, stats)), grads = jax.value_and_grad(
        loss_fn_of(model, stats), has_aux=True)(weights, alphas, norm_train)
    return grads, stats

  @jax.jit
  def forwards_in_darts_order(params, alphas, new_alphas, stats):
    grads, stats = train_forward(params, alphas, stats)
    w_prime = jax.tree.map(lambda w, g, m: w - xi * (t.momentum * m + g + t.weight_decay * w),
                           params, grads, state['momentum'])
    v = jax.grad(lambda w: loss_fn_of(model, stats)(w, alphas, norm_val)[0])(w_prime)
    r = architect.FD_EPSILON / architect.global_norm(v)
    for sign in (1, -1):
      _, stats = train_forward(jax.tree.map(lambda w, d: w + sign * r * d, params, v),
                               alphas, stats)
    return train_forward(params, new_alphas, stats)[1]

  flat = architect.flat_float32
  expected = forwards_in_darts_order(state['params'], state['alphas'], new_state['alphas'],
                                     state['batch_stats'])
  np.testing.assert_allclose(flat(new_state['batch_stats']), flat(expected), rtol=1e-5,
                             atol=1e-6)
  # The alpha step's three forwards matter: the weight step's forward alone gives others.
  _, weight_step_only = jax.jit(train_forward)(state['params'], new_state['alphas'],
                                               state['batch_stats'])
  assert float(jnp.max(jnp.abs(flat(weight_step_only) - flat(expected)))) > 1e-3


@pytest.mark.slow
def test_weights_first_steps_the_alphas_at_the_new_weights():
  """config.arch.update_order='weights_first' (AutoDL's GDAS loop): the weights move by
  the train gradient at the old alphas, then the alphas by the validation gradient at
  the new weights; 'alphas_first' (DARTS) the other way round. In first order both
  forwards update the running BN statistics, in the same order."""
  config, info, model, state, train, val = _two_op_supernet_step_inputs('first', 6)
  steps = {}
  for order in settings.UPDATE_ORDERS:
    step_config = config.copy_and_resolve_references()
    step_config.arch.update_order = order
    steps[order] = jax.jit(search_step_of(step_config, info))
  darts_state, _ = steps['alphas_first'](state, train, val)
  first_state, first_metrics = steps['weights_first'](state, train, val)

  norm_train, norm_val = (train_steps.preprocess(None, b, info, 0) for b in (train, val))
  t = config.train
  tx = settings.ArchOptimizer.from_config(config.arch).optimizer()

  def alpha_update(params, stats):
    loss_fn = loss_fn_of(model, stats)
    (val_loss, (_, stats)), a_grads = jax.value_and_grad(loss_fn, argnums=1, has_aux=True)(
        params, state['alphas'], norm_val)
    updates, _ = tx.update(a_grads, state['alpha_opt'], state['alphas'])
    return optax.apply_updates(state['alphas'], updates), stats, val_loss

  def weight_update(alphas, stats):
    loss_fn = loss_fn_of(model, stats)
    (_, (_, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state['params'], alphas, norm_train)
    params, _ = sgd.sgd_momentum_update(
        state['params'], grads, state['momentum'], lr_at_epoch_0(config), t.momentum,
        t.weight_decay, t.grad_clip)
    return params, stats

  @jax.jit
  def weights_then_alphas(state):
    params, stats = weight_update(state['alphas'], state['batch_stats'])
    alphas, stats, val_loss = alpha_update(params, stats)
    return params, alphas, stats, val_loss

  @jax.jit
  def alphas_then_weights(state):
    alphas, stats, _ = alpha_update(state['params'], state['batch_stats'])
    params, stats = weight_update(alphas, stats)
    return params, alphas, stats

  flat = architect.flat_float32
  close = lambda a, b, atol: np.testing.assert_allclose(flat(a), flat(b), rtol=1e-5, atol=atol)
  params, alphas, stats, val_loss = weights_then_alphas(state)
  close(first_state['params'], params, 1e-7)
  close(first_state['alphas'], alphas, 1e-8)
  # The running BN statistics move with the train forward, then the validation one.
  close(first_state['batch_stats'], stats, 1e-7)
  np.testing.assert_allclose(first_metrics['val_loss'], val_loss, rtol=1e-6)
  darts_params, darts_alphas, darts_stats = alphas_then_weights(state)
  close(darts_state['params'], darts_params, 1e-7)
  close(darts_state['alphas'], darts_alphas, 1e-8)
  close(darts_state['batch_stats'], darts_stats, 1e-7)
  # The two orders give other alphas, weights and statistics, so the comparisons above
  # tell them apart.
  for name, atol in (('alphas', 1e-7), ('params', 1e-6), ('batch_stats', 1e-6)):
    assert float(jnp.max(jnp.abs(flat(darts_state[name]) - flat(first_state[name])))) > atol


def test_update_order_errors_are_clear():
  info = data.get_info('digits')
  config = _tiny_supernet_config('second')
  config.arch.update_order = 'weights_first'
  with pytest.raises(UserError, match="needs config.arch.order='first'"):
    train_parts.check_config(config, info, 1, 1)
  config.arch.update_order = 'alphas_last'
  with pytest.raises(UserError, match='unknown config.arch.update_order'):
    train_parts.check_config(config, info, 1, 1)


def test_nesterov_without_momentum_is_a_clear_error():
  config = _tiny_supernet_config('first')
  config.train.nesterov, config.train.momentum = True, 0.0
  with pytest.raises(UserError, match='nesterov needs config.train.momentum > 0'):
    train_parts.check_config(config, data.get_info('digits'), 1, 1)


def test_nesterov_sgd_is_optax_nesterov_after_weight_decay():
  """sgd.sgd_momentum_update(nesterov=True) against optax: PyTorch's Nesterov SGD with
  L2 weight decay folded into the gradient, over three steps."""
  rng = np.random.default_rng(0)
  params = {'a': jnp.asarray(rng.normal(size=(3, 4)), jnp.float32),
            'b': jnp.asarray(rng.normal(size=(5,)), jnp.float32)}
  lr, momentum, wd = 0.1, 0.9, 5e-4
  tx = optax.chain(optax.add_decayed_weights(wd), optax.sgd(lr, momentum, nesterov=True))
  opt_state = tx.init(params)
  ours, buffer, theirs = params, jax.tree.map(jnp.zeros_like, params), params
  for _ in range(3):
    grads = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32),
                         params)
    ours, buffer = sgd.sgd_momentum_update(ours, grads, buffer, lr, momentum, wd,
                                              grad_clip=0.0, nesterov=True)
    updates, opt_state = tx.update(grads, opt_state, theirs)
    theirs = optax.apply_updates(theirs, updates)
  for name in params:
    np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-6, atol=1e-7)
  plain, _ = sgd.sgd_momentum_update(params, grads, buffer, lr, momentum, wd, 0.0)
  assert float(jnp.max(jnp.abs(plain['a'] - sgd.sgd_momentum_update(
      params, grads, buffer, lr, momentum, wd, 0.0, nesterov=True)[0]['a']))) > 1e-4


def test_shared_train_grad_is_refused_where_it_cannot_apply():
  info = data.get_info('digits')
  first = _tiny_supernet_config('first')
  first.arch.share_train_grad = True
  with pytest.raises(UserError, match='only in second order'):
    train_parts.check_config(first, info, 1, 1)
  gdas = _tiny_supernet_config()
  gdas.arch.share_train_grad = True
  gdas.method.name = 'gdas'
  with pytest.raises(UserError, match='needs one edge-weight sample for both'):
    train_parts.check_config(gdas, info, 1, 1)


@pytest.mark.slow
def test_exact_second_order_on_the_supernet_matches_reverse_over_reverse():
  """The supernet's exact hypergradient (forward-over-reverse through the scanned,
  rematerialized cells and the depthwise tap primitives) against JAX differentiating
  the unrolled validation loss in reverse mode twice: two independent autodiff paths."""
  config = _tiny_supernet_config()
  info = data.get_info('digits')
  search_parts = train_parts.SearchParts.from_config(config, info.num_classes)
  model, state = search_parts.model, search_parts.init_state(info.image_shape)
  loss_fn = loss_fn_of(model, state['batch_stats'])
  ks = jax.random.split(jax.random.key(3), 4)
  batch = lambda k1, k2: {'image': jax.random.normal(k1, (8,) + info.image_shape),
                          'label': jax.random.randint(k2, (8,), 0, info.num_classes)}
  train, val = batch(*ks[:2]), batch(*ks[2:])
  params, alphas = state['params'], state['alphas']
  buffer = jax.tree.map(lambda p: 0.1 * jnp.ones_like(p), params)

  @jax.jit
  def both(params, alphas, buffer):
    exact = architect.second_order_exact_grad(
        loss_fn, params, alphas, train, val, XI, buffer, MOMENTUM, WEIGHT_DECAY).grads

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

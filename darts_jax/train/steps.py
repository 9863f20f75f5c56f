"""The jitted steps: the bilevel search step, the evaluation network's SGD step, eval sums.

Pure functions of explicit state pytrees; each `make_*` closes over a model, a method
and typed settings (`train.settings`), never the config.
"""

import functools

import jax
import jax.numpy as jnp
import optax

from darts_jax.data import augmentation
from darts_jax.methods.base import Forward
from darts_jax.nn import batch_norm
from darts_jax.optim import architect
from darts_jax.optim import sgd


def cross_entropy(logits, labels) -> jax.Array:
  return optax.softmax_cross_entropy_with_integer_labels(
      logits.astype(jnp.float32), labels).mean()


def loss_with_smoothing(logits, labels, smoothing: float):
  if smoothing == 0:
    return cross_entropy(logits, labels)
  targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), smoothing)
  return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets).mean()


def alpha_entropy(alphas) -> jax.Array:
  """Mean entropy of the softmaxed op weights per edge (log(num_ops) when uniform)."""
  p = jax.nn.softmax(alphas, axis=-1)
  return -jnp.mean(jnp.sum(p * jnp.log(p + 1e-12), axis=-1))


def cast_floats(tree, dtype):
  """Floating-point leaves cast to `dtype`; gradients flow back through the cast."""
  return jax.tree.map(
      lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def like(tree, reference):
  """`tree` cast leaf by leaf to the dtypes of `reference` (e.g. float32 batch stats)."""
  return jax.tree.map(lambda x, r: x.astype(r.dtype), tree, reference)


def preprocess(key, batch, info, crop_padding: int):
  """Random crop and flip (when crop_padding > 0), then normalize."""
  images = batch['image']
  if crop_padding > 0:
    images = augmentation.random_crop_flip(key, images, crop_padding)
  return {'image': augmentation.normalize(images, info.mean, info.std),
          'label': batch['label']}


def preprocess_with_cutout(key, batch, info, crop_padding: int, cutout: int):
  """`preprocess`, then cutout (on the normalized images) when cutout > 0."""
  k_crop, k_cut = jax.random.split(key)
  batch = preprocess(k_crop, batch, info, crop_padding)
  if cutout > 0:
    batch = dict(batch, image=augmentation.cutout(k_cut, batch['image'], cutout))
  return batch


def make_loss_fn(model, batch_stats, dtype, weights_fn):
  """loss_fn(params, alphas, batch) -> (loss, (logits, new_batch_stats)).

  The network runs in `dtype` (params, images and edge weights are cast); the
  params, alphas, batch statistics and the loss stay float32.
  """

  def loss_fn(params, alphas, batch):
    logits, updates = model.apply(
        {'params': cast_floats(params, dtype), 'batch_stats': batch_stats},
        batch['image'].astype(dtype), cast_floats(weights_fn(alphas), dtype),
        train=True, mutable=['batch_stats'])
    return cross_entropy(logits, batch['label']), (logits, like(updates['batch_stats'],
                                                                 batch_stats))

  return loss_fn


def no_alpha_grad(order, loss_fn, params, alphas, train_batch, val_batch, *unused):
  """For methods that never train their alphas: zero grads and a plain val forward."""
  del order, train_batch, unused
  loss, aux = loss_fn(params, alphas, val_batch)
  return architect.AlphaGrad(jax.tree.map(jnp.zeros_like, alphas), loss, aux, (aux,))


def make_search_step(model, method, weights, arch, *, seed, info, crop_padding: int,
                     steps_per_epoch: int, dtype, track_running_stats: bool = True,
                     budget=None):
  """One jitted bilevel step: an alpha step on a validation batch and a weight step.

  DARTS order (arch.update_order 'alphas_first'): the alpha step at the current weights,
  then the weight step at the new alphas. 'weights_first' (GDAS, AutoDL's search loop):
  the weight step at the current alphas, then the alpha step at the new weights. With
  arch.share_train_grad the weight gradient is taken first, at the old alphas, and the
  second-order alpha gradient reuses it for w'. The running BN statistics follow the
  forwards in the same order. `weights`: a WeightOptimizer; `arch`: an ArchOptimizer.

  `seed` (an int) keys every step's randomness, fold_in(key(seed), step); with seed=None
  the step takes the seed as its first argument, `step(seed, state, train, val)`, so
  that a population of searches can map it over a seed axis. `budget` (a
  `train.budget.Budget`) adds its penalty, under the alpha step's edge weights, to the
  alpha step's loss.
  """
  a_tx = arch.optimizer()
  alpha_grad = architect.alpha_grad if method.trains_alphas else no_alpha_grad

  def step_of_seed(seed, state, train_batch, val_batch):
    key = jax.random.fold_in(jax.random.key(seed), state['step'])
    k_train, k_val = jax.random.split(key)
    train_batch = preprocess(k_train, train_batch, info, crop_padding)
    val_batch = preprocess(k_val, val_batch, info, crop_padding)
    lr = weights.learning_rate(state['step'] // steps_per_epoch)
    epoch = state['step'] // steps_per_epoch
    # One sample of edge weights per forward kind (the method decides what they are).
    k_arch_val, k_arch_train = jax.random.split(jax.random.fold_in(key, 1))

    def loss_fn_for(forward, k, stats):
      return make_loss_fn(model, stats, dtype,
                          lambda alphas: method.edge_weights(alphas, forward, k, epoch))

    def train_pass(alphas, stats):
      """(train loss, logits, batch stats, grad_w L_train) at the current weights."""
      (loss, (logits, new_stats)), grads = jax.value_and_grad(
          loss_fn_for(Forward.WEIGHT_STEP, k_arch_train, stats), has_aux=True)(
              state['params'], alphas, train_batch)
      return loss, logits, new_stats, grads

    def weight_step(w_grads):
      return weights.update(state['params'], w_grads, state['momentum'], lr)

    def alpha_step(params, momentum, stats, shared_grads=None):
      a_grads, val_loss, (val_logits, _), forward_auxes = alpha_grad(
          arch.order, loss_fn_for(Forward.ALPHA_STEP, k_arch_val, stats), params,
          state['alphas'], train_batch, val_batch, lr, momentum, weights.momentum,
          weights.weight_decay,
          **({} if shared_grads is None else {'train_grads': shared_grads}))
      if method.regularizer(state['alphas'], epoch) is not None:
        a_grads = jax.tree.map(jnp.add, a_grads, jax.grad(
            lambda alphas: method.regularizer(alphas, epoch))(state['alphas']))
      if budget is not None and budget.weight > 0:  # A target alone: the plain program.
        a_grads = jax.tree.map(jnp.add, a_grads, jax.grad(lambda alphas: budget.penalty(
            method.edge_weights(alphas, Forward.ALPHA_STEP, k_arch_val, epoch)))(
                state['alphas']))
      a_updates, a_opt = a_tx.update(a_grads, state['alpha_opt'], state['alphas'])
      alphas = optax.apply_updates(state['alphas'], a_updates)
      # The running BN statistics (used by the evaluation pass only) move with each
      # forward the reference runs on its network (architect.AlphaGrad).
      new_stats = batch_norm.chain_running_stats(stats, [s for _, s in forward_auxes])
      alphas, a_opt, stats = method.gate_alpha_update(
          epoch, (alphas, a_opt, new_stats), (state['alphas'], state['alpha_opt'], stats))
      return alphas, a_opt, stats, a_grads, val_loss, val_logits

    if arch.weights_first:
      train_loss, train_logits, train_stats, w_grads = train_pass(state['alphas'],
                                                                  state['batch_stats'])
      params, momentum = weight_step(w_grads)
      alphas, a_opt, batch_stats, a_grads, val_loss, val_logits = alpha_step(
          params, momentum, train_stats)
    elif arch.share_train_grad:  # The weight step's gradient, at the alphas before their update.
      train_loss, train_logits, train_stats, w_grads = train_pass(state['alphas'],
                                                                  state['batch_stats'])
      alphas, a_opt, batch_stats, a_grads, val_loss, val_logits = alpha_step(
          state['params'], state['momentum'], train_stats, shared_grads=w_grads)
      params, momentum = weight_step(w_grads)
    else:
      alphas, a_opt, val_stats, a_grads, val_loss, val_logits = alpha_step(
          state['params'], state['momentum'], state['batch_stats'])
      train_loss, train_logits, batch_stats, w_grads = train_pass(alphas, val_stats)
      params, momentum = weight_step(w_grads)

    if not track_running_stats:
      batch_stats = state['batch_stats']
    finite = sgd.all_finite(train_loss, val_loss, w_grads, a_grads, params, alphas)
    new_state = {'step': state['step'] + 1, 'params': params, 'batch_stats': batch_stats,
                 'alphas': alphas, 'momentum': momentum, 'alpha_opt': a_opt}
    step_metrics = {
        'train_loss': train_loss, 'val_loss': val_loss, 'lr': lr, 'finite': finite,
        'train_acc': jnp.mean(jnp.argmax(train_logits, -1) == train_batch['label']),
        'val_acc': jnp.mean(jnp.argmax(val_logits, -1) == val_batch['label']),
    }
    return new_state, step_metrics

  if seed is None:
    return step_of_seed
  return functools.partial(step_of_seed, seed)


def make_search_eval_step(model, method, info, batch_statistics: bool = False):
  """Loss/accuracy sums of a batch (the reference's infer) with the method's validation
  edge weights: BN with the running statistics, or with the batch's own
  (`batch_statistics`, config.model.track_running_stats False; `evaluate` pads a last
  partial batch with its own examples)."""

  def eval_step(state, batch, mask):
    images = augmentation.normalize(batch['image'], info.mean, info.std)
    variables = {'params': state['params'], 'batch_stats': state['batch_stats']}
    weights = method.edge_weights(state['alphas'], Forward.VALIDATION, None, 0)
    if batch_statistics:
      logits, _ = model.apply(variables, images, weights, train=True, mutable=['batch_stats'])
    else:
      logits = model.apply(variables, images, weights, train=False)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label'])
    correct = jnp.argmax(logits, -1) == batch['label']
    return jnp.sum(losses * mask), jnp.sum(correct * mask), jnp.sum(mask)

  return eval_step


def make_train_step(model, weights, *, seed: int, info, crop_padding: int, cutout: int,
                    steps_per_epoch: int, dtype, drop_path_prob: float,
                    label_smoothing: float, auxiliary_weight: float):
  """One jitted SGD step of a network trained from scratch; the drop path probability
  ramps up linearly per epoch (`weights`: a WeightOptimizer)."""

  def step(state, batch):
    key = jax.random.fold_in(jax.random.key(seed), state['step'])
    k_aug, k_drop = jax.random.split(key)
    batch = preprocess_with_cutout(k_aug, batch, info, crop_padding, cutout)
    epoch = state['step'] // steps_per_epoch
    lr = weights.learning_rate(epoch)
    drop_prob = drop_path_prob * epoch / weights.epochs if drop_path_prob > 0 else None

    def loss_fn(params):
      # The network runs in the compute dtype; params, batch stats and loss stay float32.
      (logits, aux), updates = model.apply(
          {'params': cast_floats(params, dtype), 'batch_stats': state['batch_stats']},
          batch['image'].astype(dtype), train=True, drop_path_prob=drop_prob,
          rngs={'dropout': k_drop}, mutable=['batch_stats'])
      loss = loss_with_smoothing(logits, batch['label'], label_smoothing)
      if aux is not None:
        loss += auxiliary_weight * loss_with_smoothing(aux, batch['label'], label_smoothing)
      return loss, (logits, like(updates['batch_stats'], state['batch_stats']))

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state['params'])
    params, momentum = weights.update(state['params'], grads, state['momentum'], lr)
    new_state = {'step': state['step'] + 1, 'params': params, 'batch_stats': batch_stats,
                 'momentum': momentum}
    step_metrics = {'train_loss': loss, 'lr': lr,
                    'finite': sgd.all_finite(loss, grads, params),
                    'train_acc': jnp.mean(jnp.argmax(logits, -1) == batch['label'])}
    return new_state, step_metrics

  return step


def make_test_step(model, info):
  """Sums of a batch with running BN statistics: loss, top-1 and top-5 correct, count."""

  def eval_step(state, batch, mask):
    images = augmentation.normalize(batch['image'], info.mean, info.std)
    logits, _ = model.apply({'params': state['params'], 'batch_stats': state['batch_stats']},
                            images, train=False)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label'])
    correct = jnp.argmax(logits, -1) == batch['label']
    _, top5 = jax.lax.top_k(logits, min(5, logits.shape[-1]))
    correct_top5 = jnp.any(top5 == batch['label'][:, None], axis=-1)
    return (jnp.sum(losses * mask), jnp.sum(correct * mask), jnp.sum(correct_top5 * mask),
            jnp.sum(mask))

  return eval_step

"""The DARTS search: bilevel optimization of a supernet, then discretization.

One readable trainer in sections: setup, data, model and state, step,
checkpoint, loop, outputs. `search(config, workdir)` is the entry point
(`darts_jax.main` calls it); it resumes from the workdir's checkpoint when
there is one.
"""

import json
import os
import time

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from darts_jax import architect
from darts_jax import augmentation
from darts_jax import batch_norm
from darts_jax import checkpoint
from darts_jax import conv
from darts_jax import data
from darts_jax import genotypes
from darts_jax import initializers
from darts_jax import methods
from darts_jax import metrics
from darts_jax import parallel
from darts_jax import preemption
from darts_jax import search_ops
from darts_jax import supernet
from darts_jax.errors import UserError


# ---------------------------------------------------------------------------
# Model and pure maths.


def build_model(config, num_classes: int) -> supernet.SearchNetwork:
  return methods.build_model(config, num_classes)


def init_alphas(key, num_edges: int, num_ops: int) -> dict:
  """1e-3 * N(0, 1), as in the reference code."""
  kn, kr = jax.random.split(key)
  return {'normal': 1e-3 * jax.random.normal(kn, (num_edges, num_ops)),
          'reduce': 1e-3 * jax.random.normal(kr, (num_edges, num_ops))}


def edge_weights(alphas: dict) -> dict:
  return jax.tree.map(lambda a: jax.nn.softmax(a, axis=-1), alphas)


def alpha_entropy(alphas) -> jax.Array:
  """Mean entropy of the softmaxed op weights per edge (log(num_ops) when uniform)."""
  p = jax.nn.softmax(alphas, axis=-1)
  return -jnp.mean(jnp.sum(p * jnp.log(p + 1e-12), axis=-1))


def cross_entropy(logits, labels) -> jax.Array:
  return optax.softmax_cross_entropy_with_integer_labels(
      logits.astype(jnp.float32), labels).mean()


def cosine_lr(config, epoch):
  """The reference's per-epoch cosine annealing from lr to lr_min.

  With `config.train.warmup_epochs` = n > 0, epoch e < n runs at (e + 1) / n of it
  (PC-DARTS's ImageNet search: n = 5, for batches above 256).
  """
  t = config.train
  lr = t.lr_min + 0.5 * (t.lr - t.lr_min) * (1 + jnp.cos(jnp.pi * epoch / t.epochs))
  warmup = t.get('warmup_epochs', 0)
  if warmup > 0:
    lr = lr * jnp.minimum(1.0, (epoch + 1) / warmup)
  return lr


def sgd_momentum_update(params, grads, buffer, lr, momentum, weight_decay, grad_clip,
                        nesterov=False):
  """PyTorch SGD (momentum, L2 weight decay, optionally Nesterov) after global-norm
  clipping (none when grad_clip <= 0)."""
  if grad_clip > 0:
    norm = architect.global_norm(grads)
    scale = jnp.minimum(1.0, grad_clip / (norm + 1e-6))
    grads = jax.tree.map(lambda g: g * scale, grads)
  decayed = jax.tree.map(lambda g, w: g + weight_decay * w, grads, params)
  buffer = jax.tree.map(lambda m, d: momentum * m + d, buffer, decayed)
  if nesterov:  # torch.optim.SGD(nesterov=True): d + momentum * (momentum * m + d).
    updates = jax.tree.map(lambda d, m: d + momentum * m, decayed, buffer)
  else:
    updates = buffer
  params = jax.tree.map(lambda w, u: w - lr * u, params, updates)
  return params, buffer


def all_finite(*trees) -> jax.Array:
  """True when every element of every leaf is finite (no overflow from squaring)."""
  return jnp.all(jnp.isfinite(architect.flat_float32(trees)))


def alpha_optimizer(config) -> optax.GradientTransformation:
  """Adam with L2 weight decay added to the gradient (PyTorch Adam semantics), after
  global-norm clipping when `config.arch.grad_clip` > 0 (PC-DARTS's ImageNet search)."""
  a = config.arch
  decayed_adam = [optax.add_decayed_weights(a.weight_decay),
                  optax.adam(a.lr, b1=a.beta1, b2=a.beta2)]
  if a.get('grad_clip', 0.0) > 0:
    return optax.chain(optax.clip_by_global_norm(a.grad_clip), *decayed_adam)
  return optax.chain(*decayed_adam)


def preprocess(key, batch, info: data.DatasetInfo, crop_padding: int):
  images = batch['image']
  if crop_padding > 0:
    images = augmentation.random_crop_flip(key, images, crop_padding)
  return {'image': augmentation.normalize(images, info.mean, info.std),
          'label': batch['label']}


COMPUTE_DTYPES = ('float32', 'bfloat16')
UPDATE_ORDERS = ('alphas_first', 'weights_first')


def compute_dtype(config) -> jnp.dtype:
  """config.model.compute_dtype: the dtype of the forward and backward passes."""
  name = config.model.get('compute_dtype', 'float32')
  if name not in COMPUTE_DTYPES:
    raise UserError(f'unknown config.model.compute_dtype {name!r}; use one of {COMPUTE_DTYPES}')
  return jnp.dtype(name)


def check_compute_dtype(config) -> None:
  """Validates config.model.compute_dtype; warns where it is slower, not faster."""
  if compute_dtype(config) == jnp.bfloat16 and jax.default_backend() == 'cpu':
    logging.warning('config.model.compute_dtype=bfloat16 on CPU: XLA:CPU ran the search step '
                    '3.7x slower in bfloat16 than in float32 (BUILD_NOTES.md); use float32 '
                    'on CPU, bfloat16 on GPUs and TPUs.')


def cast_floats(tree, dtype):
  """Floating-point leaves cast to `dtype`; gradients flow back through the cast."""
  return jax.tree.map(
      lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def like(tree, reference):
  """`tree` cast leaf by leaf to the dtypes of `reference` (e.g. float32 batch stats)."""
  return jax.tree.map(lambda x, r: x.astype(r.dtype), tree, reference)


def make_loss_fn(model, batch_stats, dtype=jnp.float32, weights_fn=edge_weights):
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


def shares_train_grad(config) -> bool:
  """config.arch.share_train_grad: one train gradient for the virtual and the weight step.

  DARTS steps the weights with grad_w L_train(w, a_new), after the alpha update,
  and so computes grad_w L_train twice per second-order step: at a for the
  virtual step w', at a_new for the weights. Shared, both use the one at a, so
  the weights move without the alpha step's change (a "simultaneous" update)
  and, with xi = lr, w' is the actual next weights before gradient clipping.
  """
  return bool(config.arch.get('share_train_grad', False))


def check_share_train_grad(config):
  if not shares_train_grad(config):
    return
  if config.arch.order == 'first':
    raise UserError('config.arch.share_train_grad saves a pass only in second order; set '
                    'config.arch.order to second_exact or second_fd, or drop it')
  if methods.method_name(config) not in ('darts', 'pc_darts'):
    raise UserError(f'config.arch.share_train_grad needs one edge-weight sample for both '
                    f'steps: use method darts or pc_darts, not {methods.method_name(config)}')


def tracks_running_stats(config) -> bool:
  return config.model.get('track_running_stats', True)


def update_order(config) -> str:
  """config.arch.update_order: 'alphas_first' (DARTS) or 'weights_first' (GDAS)."""
  return config.arch.get('update_order', 'alphas_first')


def check_update_order(config):
  order = update_order(config)
  if order not in UPDATE_ORDERS:
    raise UserError(f'unknown config.arch.update_order {order!r}; use one of '
                    f'{", ".join(UPDATE_ORDERS)}')
  if order == 'weights_first' and config.arch.order != 'first':
    raise UserError("config.arch.update_order='weights_first' needs config.arch.order="
                    "'first' (the unrolled step is defined at the weights before their "
                    "update); set it, or use update_order='alphas_first'")


def make_search_step(model, config, info: data.DatasetInfo, steps_per_epoch: int):
  """One jitted bilevel step: an alpha step on a validation batch and a weight step.

  DARTS order (config.arch.update_order='alphas_first'): the alpha step at the
  current weights, then the weight step at the new alphas. 'weights_first' (GDAS,
  AutoDL's search loop): the weight step at the current alphas, then the alpha
  step at the new weights. With config.arch.share_train_grad the weight gradient
  is taken first, at the old alphas, and the second-order alpha gradient reuses
  it for w'. The running BN statistics follow the forwards in the same order.
  """
  a_tx = alpha_optimizer(config)
  t = config.train
  shared = shares_train_grad(config)
  weights_first = update_order(config) == 'weights_first'
  alpha_grad = architect.alpha_grad if methods.trains_alphas(config) else methods.no_alpha_grad
  tracking = tracks_running_stats(config)

  def step(state, train_batch, val_batch):
    key = jax.random.fold_in(jax.random.key(config.seed), state['step'])
    k_train, k_val = jax.random.split(key)
    train_batch = preprocess(k_train, train_batch, info, t.crop_padding)
    val_batch = preprocess(k_val, val_batch, info, t.crop_padding)
    lr = cosine_lr(config, state['step'] // steps_per_epoch)
    epoch = state['step'] // steps_per_epoch
    # Edge weights per config.method (darts: softmax); one sample per forward kind.
    k_arch_val, k_arch_train = jax.random.split(jax.random.fold_in(key, 1))
    loss_fn_for = lambda k, stats: make_loss_fn(model, stats, compute_dtype(config),
                                                methods.train_weights_fn(config, k, epoch))

    def train_pass(alphas, stats):
      """(train loss, logits, batch stats, grad_w L_train) at the current weights."""
      (loss, (logits, new_stats)), grads = jax.value_and_grad(
          loss_fn_for(k_arch_train, stats), has_aux=True)(state['params'], alphas, train_batch)
      return loss, logits, new_stats, grads

    def weight_step(w_grads):
      return sgd_momentum_update(state['params'], w_grads, state['momentum'], lr,
                                 t.momentum, t.weight_decay, t.grad_clip,
                                 t.get('nesterov', False))

    def alpha_step(params, momentum, stats, shared_grads=None):
      a_grads, val_loss, (val_logits, _), forward_auxes = alpha_grad(
          config.arch.order, loss_fn_for(k_arch_val, stats), params, state['alphas'],
          train_batch, val_batch, lr, momentum, t.momentum, t.weight_decay,
          **({} if shared_grads is None else {'train_grads': shared_grads}))
      a_updates, a_opt = a_tx.update(a_grads, state['alpha_opt'], state['alphas'])
      alphas = optax.apply_updates(state['alphas'], a_updates)
      # The running BN statistics (used by the evaluation pass only) move with each
      # forward the reference runs on its network (architect.AlphaGrad).
      new_stats = batch_norm.chain_running_stats(stats, [s for _, s in forward_auxes])
      alphas, a_opt, stats = methods.gate_arch_update(
          config, epoch, (alphas, a_opt, new_stats), (state['alphas'], state['alpha_opt'], stats))
      return alphas, a_opt, stats, a_grads, val_loss, val_logits

    if weights_first:
      train_loss, train_logits, train_stats, w_grads = train_pass(state['alphas'],
                                                                  state['batch_stats'])
      params, momentum = weight_step(w_grads)
      alphas, a_opt, batch_stats, a_grads, val_loss, val_logits = alpha_step(
          params, momentum, train_stats)
    elif shared:  # The weight step's gradient, at the alphas before their update.
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

    if not tracking:
      batch_stats = state['batch_stats']
    finite = all_finite(train_loss, val_loss, w_grads, a_grads, params, alphas)
    new_state = {'step': state['step'] + 1, 'params': params, 'batch_stats': batch_stats,
                 'alphas': alphas, 'momentum': momentum, 'alpha_opt': a_opt}
    step_metrics = {
        'train_loss': train_loss, 'val_loss': val_loss, 'lr': lr, 'finite': finite,
        'train_acc': jnp.mean(jnp.argmax(train_logits, -1) == train_batch['label']),
        'val_acc': jnp.mean(jnp.argmax(val_logits, -1) == val_batch['label']),
    }
    return new_state, step_metrics

  return step


def make_eval_step(model, info: data.DatasetInfo, weights_fn=edge_weights,
                   batch_statistics: bool = False):
  """Loss/accuracy sums of a batch (the reference's infer): BN with the running
  statistics, or with the batch's own (`batch_statistics`, config.model.track_running_stats
  False; `evaluate` pads a last partial batch with its own examples)."""

  def eval_step(state, batch, mask):
    images = augmentation.normalize(batch['image'], info.mean, info.std)
    variables = {'params': state['params'], 'batch_stats': state['batch_stats']}
    weights = weights_fn(state['alphas'])
    if batch_statistics:
      logits, _ = model.apply(variables, images, weights, train=True, mutable=['batch_stats'])
    else:
      logits = model.apply(variables, images, weights, train=False)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label'])
    correct = jnp.argmax(logits, -1) == batch['label']
    return jnp.sum(losses * mask), jnp.sum(correct * mask), jnp.sum(mask)

  return eval_step


def init_state(model, config, info: data.DatasetInfo):
  """Weights, batch statistics, alphas and both optimizer states, all explicit."""
  key = jax.random.key(config.seed)
  k_model, k_alpha = jax.random.split(key)
  num_ops = len(model.primitives)
  alphas = methods.init_arch(config, k_alpha, num_ops)  # = init_alphas(...) for DARTS.
  # Parameter shapes do not depend on the batch, so init on one image; the
  # parameters are drawn on the host (much faster to compile, see initializers).
  x = jnp.zeros((1,) + info.image_shape, jnp.float32)
  variables = initializers.host_init(
      lambda k: model.init(k, x, methods.eval_weights(config, alphas), train=True),
      k_model, config.seed)
  params = variables['params']
  return {
      'step': jnp.zeros((), jnp.int32),
      'params': params,
      'batch_stats': variables['batch_stats'],
      'alphas': alphas,
      'momentum': initializers.zeros_like(params),
      'alpha_opt': alpha_optimizer(config).init(alphas),
  }


# ---------------------------------------------------------------------------
# Validation of the config.


def check_config(config, info: data.DatasetInfo, num_devices: int, process_count: int):
  t = config.train
  for name in ('batch_size', 'epochs'):
    if t[name] <= 0:
      raise UserError(f'config.train.{name} must be positive, got {t[name]}')
  for name in ('init_channels', 'layers'):
    if config.model[name] <= 0:
      raise UserError(f'config.model.{name} must be positive, got {config.model[name]}')
  if config.arch.order not in architect.ORDERS:
    raise UserError(f'unknown config.arch.order {config.arch.order!r}; use one of '
                    f'{architect.ORDERS}')
  parallel.check_batch(t.batch_size, num_devices, process_count)
  parallel.check_batch(config.eval_batch_size, num_devices, process_count,
                       'config.eval_batch_size')
  check_compute_dtype(config)
  if config.arch.order == 'second_fd' and compute_dtype(config) != jnp.float32:
    raise UserError(f'config.arch.order=second_fd perturbs the weights by 0.01 / ||v|| in '
                    f'all, below {config.model.compute_dtype} resolution: use '
                    "config.model.compute_dtype='float32' or config.arch.order=second_exact")
  preemption.checkpoint_settings(config)
  check_sgd(t)
  methods.check_config(config)
  check_share_train_grad(config)
  check_update_order(config)
  check_seed(config.seed)
  if methods.space_name(config) == 'darts':
    check_search_space(config.search_space)
  if t.crop_padding < 0:
    raise UserError(f'config.train.crop_padding must be >= 0, got {t.crop_padding}')
  if config.model.get('cell_impl', 'auto') not in supernet.CELL_IMPLEMENTATIONS:
    raise UserError(f'unknown config.model.cell_impl {config.model.cell_impl!r}; '
                    f'use one of {supernet.CELL_IMPLEMENTATIONS}')
  try:
    supernet.resolve_remat(config.model.get('remat', 'auto'))
  except ValueError as e:
    raise UserError(str(e)) from None
  if config.model.depthwise_impl not in conv.IMPLEMENTATIONS:
    raise UserError(f'unknown config.model.depthwise_impl {config.model.depthwise_impl!r}; '
                    f'use one of {conv.IMPLEMENTATIONS}')
  stem = config.model.get('stem', 'cifar')
  if stem not in supernet.STEMS:
    raise UserError(f'unknown config.model.stem {stem!r}; use one of {supernet.STEMS}')
  if stem != 'cifar' and methods.space_name(config) != 'darts':
    raise UserError(f"config.model.stem={stem!r} is for the DARTS space; NAS-Bench-201 has "
                    "its own stem: set config.model.stem='cifar'")
  warmup = t.get('warmup_epochs', 0)
  if not isinstance(warmup, int) or warmup < 0:
    raise UserError(f'config.train.warmup_epochs must be an integer >= 0, got {warmup!r}')
  if config.arch.get('grad_clip', 0.0) < 0:
    raise UserError(f'config.arch.grad_clip must be >= 0 (0: no clipping), got '
                    f'{config.arch.grad_clip}')
  subset = config.dataset.get('search_subset', 1.0)
  if not 0.0 < subset <= 1.0:
    raise UserError(f'config.dataset.search_subset must be in (0, 1], got {subset}')
  data.check_search_split(config.dataset.get('search_split', 'ordered'), subset)
  check_image_size(info, supernet.stem_strides(stem)
                   + len(supernet.reduction_layers(config.model.layers)), config.model.layers)


def check_sgd(train) -> None:
  """config.train's SGD settings (shared by search and augment)."""
  if train.get('nesterov', False) and train.momentum <= 0:
    raise UserError(f'config.train.nesterov needs config.train.momentum > 0, got '
                    f'{train.momentum}: set a momentum or config.train.nesterov=False')


def check_seed(seed):
  if not isinstance(seed, int) or seed < 0:
    raise UserError(f'config.seed must be an integer >= 0, got {seed!r}')


def check_search_space(space):
  if space.steps < 1:
    raise UserError(f'config.search_space.steps must be positive, got {space.steps}')
  if not 1 <= space.multiplier <= space.steps:
    raise UserError(f'config.search_space.multiplier must be in 1..steps ({space.steps}), '
                    f'got {space.multiplier}')
  search_ops.check_primitives(space.primitives)
  if all(p == 'none' for p in space.primitives):
    raise UserError("config.search_space.primitives has no op other than 'none'; a genotype "
                    'needs at least one real op')


def check_image_size(info: data.DatasetInfo, num_reductions: int, layers: int):
  if min(info.image_shape[:2]) < 2 ** num_reductions:
    raise UserError(f'{info.name} images ({info.image_shape[0]}px) are too small for '
                    f'{layers} cells; use fewer layers')


# ---------------------------------------------------------------------------
# The loop.


def search(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs (or resumes) a search; writes metrics, alphas and genotypes to `workdir`."""
  # Setup.
  info = data.get_info(config.dataset.name)
  mesh = parallel.make_mesh()
  check_config(config, info, mesh.size, jax.process_count())
  is_main = jax.process_index() == 0
  checkpoint.prepare_workdir(workdir, config, mode='search', write=is_main)

  # Data: the train split only (or a sample of it), divided into search-train and
  # search-val. An epoch is one pass over search-train; a smaller search-val is cycled.
  source = data.load_source(config.dataset.name, 'train', config.dataset.data_dir,
                            seed=config.seed)
  subset = config.dataset.get('search_subset', 1.0)
  train_idx, val_idx = data.search_indices(source, config.dataset.get('search_split', 'ordered'),
                                           config.dataset.train_portion, config.seed, subset)
  batch = config.train.batch_size
  steps_per_epoch = len(train_idx) // batch
  if min(len(train_idx), len(val_idx)) < batch:
    raise UserError(f'config.train.batch_size {batch} is larger than the '
                    f'{min(len(train_idx), len(val_idx))} examples of each search split')
  if config.max_steps_per_epoch > 0:
    steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)

  # Model and state (resumed from the newest readable checkpoint, if any).
  checkpoint_every, checkpoints_to_keep = preemption.checkpoint_settings(config)
  model = build_model(config, num_classes=info.num_classes)
  state = init_state(model, config, info)
  # Replicated first, so that a checkpoint is restored straight into the replicated
  # layout: with several processes, moving a restored array there is a cross-host copy.
  state = parallel.replicate(state, mesh)
  state, meta = checkpoint.restore_latest(workdir, state)
  checkpoint.check_resumable(meta, steps_per_epoch, workdir)
  data_split = data.split_digest(train_idx, val_idx)
  if meta:
    checkpoint.check_same_data_split(meta, data_split, workdir, unrecorded=data.split_digest(
        *data.search_split_random(len(source), config.dataset.train_portion, config.seed,
                                  subset)))
  start_step = int(jax.device_get(state['step']))
  start_epoch, start_offset = divmod(start_step, steps_per_epoch)
  if meta:
    logging.info('resumed from the checkpoint of step %d (epoch %d, step %d of it) in %s',
                 start_step, start_epoch, start_offset, workdir)
  if is_main:  # Lines of epochs after the checkpoint are written again below.
    for name in ('metrics.jsonl', 'genotypes.jsonl'):
      checkpoint.truncate_jsonl(os.path.join(workdir, name), start_epoch)

  search_step = parallel.jit(make_search_step(model, config, info, steps_per_epoch),
                             donate_argnums=(0,))
  eval_step = parallel.jit(make_eval_step(model, info, methods.eval_weights_fn(config),
                                          batch_statistics=not tracks_running_stats(config)))
  writer = metrics.MetricWriter(workdir, enabled=is_main, first_step=start_step + 1)
  primitives = list(model.primitives)

  epoch_summary = {}
  # `max_epochs_this_run` (optional) stops early, e.g. to test resuming.
  end_epoch = config.train.epochs
  if config.get('max_epochs_this_run', 0) > 0:
    end_epoch = min(end_epoch, start_epoch + config.max_epochs_this_run)
  with preemption.stop_on_sigterm() as stop_request:
    guard = preemption.StepGuard(
        workdir, steps_per_epoch, checkpoint_every, checkpoints_to_keep, stop_request,
        hint='lower config.train.lr or config.arch.lr', data_split=data_split)
    guard.last_saved_step = start_step if meta else None
    step = start_step
    for epoch in range(start_epoch, end_epoch):
      epoch_start = time.time()
      loaders = [
          data.epoch_loader(source, idx, batch, config.seed * 2 + k, epoch, steps_per_epoch,
                            step - epoch * steps_per_epoch, jax.process_index(),
                            jax.process_count())
          for k, idx in enumerate((train_idx, val_idx))
      ]
      progress = metrics.Progress(steps_per_epoch,
                                  desc=f'epoch {epoch + 1}/{config.train.epochs}',
                                  enabled=is_main)
      progress.n = step - epoch * steps_per_epoch
      epoch_metrics = preemption.EpochMetrics()
      if epoch == start_epoch:
        epoch_metrics.resume(meta, start_offset)
      loop_start = time.time()
      first_step_seconds = None
      for train_batch, val_batch in zip(*loaders):
        state, m = search_step(state, parallel.shard_batch(train_batch, mesh),
                               parallel.shard_batch(val_batch, mesh))
        step += 1
        epoch_metrics.append(m)
        guard.add(step, m['finite'])
        if first_step_seconds is None:  # Includes the compile in the first epoch.
          jax.block_until_ready(m)
          first_step_seconds = time.time() - loop_start
          rest_start = time.time()
        progress.step_dispatched(epoch_metrics.steps)
        if guard.after_step(state, step, epoch_metrics):
          progress.close()
          writer.close()
          return guard.preempted_result(step)
      jax.block_until_ready(state)
      rest_seconds = time.time() - rest_start
      steps_run = len(epoch_metrics.steps) - epoch_metrics.resumed
      progress.close()
      guard.check_finite()
      host = epoch_metrics.host()

      val_loss, val_acc = evaluate(eval_step, state, source, val_idx, config, mesh)
      alphas = jax.device_get(state['alphas'])
      genotype = methods.derive(config, alphas)  # A Genotype, or an nb201.Arch.
      epoch_summary = {
          'epoch': epoch + 1,
          'train_loss': epoch_metrics.mean(host, 'train_loss'),
          'train_acc': epoch_metrics.mean(host, 'train_acc'),
          'search_val_loss': epoch_metrics.mean(host, 'val_loss'),
          'search_val_acc': epoch_metrics.mean(host, 'val_acc'),
          'val_loss': val_loss, 'val_acc': val_acc,
          'lr': host[-1]['lr'],
          'alpha_lr': config.arch.lr,
          **{f'alpha_entropy_{c}': float(alpha_entropy(alphas[c]))
             for c in methods.cell_types(config)},
          'first_step_seconds': first_step_seconds,
          'step_seconds': (rest_seconds / (steps_run - 1) if steps_run > 1
                           else first_step_seconds),
          'epoch_seconds': time.time() - epoch_start,
          'data_wait_fraction': sum(l.wait_seconds for l in loaders) / max(
              time.time() - epoch_start, 1e-9),
      }
      if is_main:
        writer.write(step, epoch_summary)
        for cell, w in methods.derivation_weights(config, alphas).items():
          writer.write_alphas(step, cell, w, primitives)
        write_epoch_outputs(workdir, epoch + 1, alphas, primitives, genotype)
      guard.save(state, step)
      logging.info('epoch %d: train_acc %.4f val_acc %.4f genotype %s', epoch + 1,
                   epoch_summary['train_acc'], val_acc, methods.arch_text(genotype))
      if stop_request and epoch + 1 < end_epoch:
        writer.close()
        return guard.preempted_result(step)

  writer.close()
  # random_ws: the best of N random candidates on validation data.
  state, method_result = methods.finalize(config, state, eval_step, evaluate, source, val_idx,
                                          mesh)
  alphas = jax.device_get(state['alphas'])
  genotype = methods.derive(config, alphas)
  result = {'genotype': methods.arch_text(genotype),
            'val_acc': epoch_summary.get('val_acc'), 'epochs': config.train.epochs,
            'method': methods.method_name(config), **method_result,
            **methods.benchmark_result(config, genotype)}
  if is_main:
    methods.save_arch(genotype, workdir)
    checkpoint.write_npz(os.path.join(workdir, 'alphas.npz'),
                         primitives=np.array(primitives), **alphas)
    checkpoint.write_json(os.path.join(workdir, 'result.json'), result)
    from darts_jax import report  # pylint: disable=g-import-not-at-top
    report.write_report_or_warn(workdir)
  return result


def evaluate(eval_step, state, source, indices, config, mesh):
  """The means over `indices` (padded to whole batches, masked) of `eval_step`'s sums.

  A last partial batch is padded with its own examples repeated in turn, so that BN
  with batch statistics sees those examples only (exactly their statistics when their
  number divides the batch).

  `eval_step` returns per-batch sums, the example count last (e.g. loss, correct,
  count: then this returns (mean loss, accuracy)). Each process reads only its rows
  of every global batch of config.eval_batch_size.
  """
  batch = config.eval_batch_size
  parallel.check_batch(batch, mesh.size, jax.process_count(), 'config.eval_batch_size')
  rows = parallel.process_rows(batch, jax.process_index(), jax.process_count())
  n = len(indices)
  totals = None
  for start in range(0, n, batch):
    idx = indices[start:start + batch]
    mask = np.zeros(batch, np.float32)
    mask[:len(idx)] = 1.0
    idx = np.resize(idx, batch)
    idx, mask = idx[rows], mask[rows]
    images, labels = source.get(idx)
    sums = eval_step(state, parallel.shard_batch({'image': images, 'label': labels}, mesh),
                     parallel.shard_batch(mask, mesh))
    sums = [float(x) for x in sums]
    totals = sums if totals is None else [t + x for t, x in zip(totals, sums)]
  *totals, count = totals
  return tuple(t / count for t in totals)


def write_epoch_outputs(workdir, epoch, alphas, primitives, genotype):
  from darts_jax import visualize  # Imports matplotlib: only where pictures are drawn.
  if not isinstance(genotype, genotypes.Genotype):  # NAS-Bench-201: its one cell.
    methods.write_epoch_outputs(workdir, epoch, alphas, primitives, genotype)
    visualize.draw_epoch(workdir, epoch, genotype)
    return
  checkpoint.write_npz(os.path.join(workdir, 'alphas', f'epoch_{epoch:03d}.npz'),
                       primitives=np.array(primitives), **alphas)
  with open(os.path.join(workdir, 'genotypes.jsonl'), 'a', encoding='utf-8') as f:
    f.write(json.dumps({'epoch': epoch, 'genotype': genotypes.genotype_to_json(genotype),
                        'text': genotypes.genotype_to_text(genotype)}) + '\n')
  visualize.draw_epoch(workdir, epoch, genotype, alphas['normal'], alphas['reduce'],
                       primitives)

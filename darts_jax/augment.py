"""The DARTS evaluation ("augment"): train a fixed genotype from scratch.

Follows `search.py`'s layout: model and pure maths, config checks, the loop.
`train_and_evaluate(config, workdir)` is the entry point (`darts_jax.main`
calls it for config.mode == 'augment'); it trains on the whole train split,
evaluates on the test split every epoch and resumes from the workdir's
checkpoint when there is one.
"""

import os
import time

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from darts_jax import augment_net
from darts_jax import augment_ops
from darts_jax import augmentation
from darts_jax import checkpoint
from darts_jax import data
from darts_jax import genotypes
from darts_jax import initializers
from darts_jax import metrics
from darts_jax import nb201
from darts_jax import parallel
from darts_jax import preemption
from darts_jax import search
from darts_jax import summary
from darts_jax.errors import UserError

LR_SCHEDULES = ('cosine', 'exponential')


# ---------------------------------------------------------------------------
# Model and pure maths.


def learning_rate(config, epoch):
  t = config.train
  if t.lr_schedule == 'cosine':
    return search.cosine_lr(config, epoch)
  return t.lr * t.lr_decay ** epoch


def loss_with_smoothing(logits, labels, smoothing: float):
  if smoothing == 0:
    return search.cross_entropy(logits, labels)
  targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), smoothing)
  return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets).mean()


def preprocess(key, batch, info: data.DatasetInfo, crop_padding: int, cutout: int):
  """Random crop and flip, normalize, then cutout (on the normalized images)."""
  k_crop, k_cut = jax.random.split(key)
  batch = search.preprocess(k_crop, batch, info, crop_padding)
  if cutout > 0:
    batch = dict(batch, image=augmentation.cutout(k_cut, batch['image'], cutout))
  return batch


def make_train_step(model, config, info: data.DatasetInfo, steps_per_epoch: int):
  """One jitted SGD step; the drop path probability ramps up linearly per epoch."""
  t, m = config.train, config.model
  dtype = search.compute_dtype(config)

  def step(state, batch):
    key = jax.random.fold_in(jax.random.key(config.seed), state['step'])
    k_aug, k_drop = jax.random.split(key)
    batch = preprocess(k_aug, batch, info, t.crop_padding, t.cutout)
    epoch = state['step'] // steps_per_epoch
    lr = learning_rate(config, epoch)
    drop_prob = m.drop_path_prob * epoch / t.epochs if m.drop_path_prob > 0 else None

    def loss_fn(params):
      # The network runs in the compute dtype; params, batch stats and loss stay float32.
      (logits, aux), updates = model.apply(
          {'params': search.cast_floats(params, dtype), 'batch_stats': state['batch_stats']},
          batch['image'].astype(dtype), train=True, drop_path_prob=drop_prob,
          rngs={'dropout': k_drop}, mutable=['batch_stats'])
      loss = loss_with_smoothing(logits, batch['label'], t.label_smoothing)
      if aux is not None:
        loss += m.auxiliary_weight * loss_with_smoothing(aux, batch['label'],
                                                         t.label_smoothing)
      return loss, (logits, search.like(updates['batch_stats'], state['batch_stats']))

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state['params'])
    params, momentum = search.sgd_momentum_update(
        state['params'], grads, state['momentum'], lr, t.momentum, t.weight_decay,
        t.grad_clip, t.get('nesterov', False))
    new_state = {'step': state['step'] + 1, 'params': params, 'batch_stats': batch_stats,
                 'momentum': momentum}
    step_metrics = {'train_loss': loss, 'lr': lr,
                    'finite': search.all_finite(loss, grads, params),
                    'train_acc': jnp.mean(jnp.argmax(logits, -1) == batch['label'])}
    return new_state, step_metrics

  return step


def make_eval_step(model, info: data.DatasetInfo):
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


def init_state(model, config, info: data.DatasetInfo):
  """Weights, batch statistics and the momentum buffer, all explicit."""
  x = jnp.zeros((1,) + info.image_shape, jnp.float32)  # Shapes do not depend on the batch.
  variables = initializers.host_init(lambda k: model.init(k, x, train=True),
                                     jax.random.key(config.seed), config.seed)
  params = variables['params']
  return {
      'step': jnp.zeros((), jnp.int32),
      'params': params,
      'batch_stats': variables['batch_stats'],
      'momentum': initializers.zeros_like(params),
  }


# ---------------------------------------------------------------------------
# Validation of the config.


def check_config(config, info: data.DatasetInfo, num_devices: int, process_count: int):
  t = config.train
  for name in ('batch_size', 'epochs'):
    if t[name] <= 0:
      raise UserError(f'config.train.{name} must be positive, got {t[name]}')
  if t.lr_schedule not in LR_SCHEDULES:
    raise UserError(f'unknown config.train.lr_schedule {t.lr_schedule!r}; use one of '
                    f'{LR_SCHEDULES}')
  if not 0 <= t.label_smoothing < 1:
    raise UserError(f'config.train.label_smoothing must be in [0, 1), got '
                    f'{t.label_smoothing}')
  parallel.check_batch(t.batch_size, num_devices, process_count)
  parallel.check_batch(config.eval_batch_size, num_devices, process_count,
                       'config.eval_batch_size')
  search.check_compute_dtype(config)
  preemption.checkpoint_settings(config)
  search.check_sgd(t)
  search.check_seed(config.seed)
  for name in ('crop_padding', 'cutout'):
    if t[name] < 0:
      raise UserError(f'config.train.{name} must be >= 0, got {t[name]}')
  check_color_jitter(t.color_jitter, config.dataset.name)
  search.check_image_size(info, len(set(augment_net.reduction_layers(config.model.layers))),
                          config.model.layers)


def check_color_jitter(strengths, dataset: str) -> None:
  if not strengths:
    return
  if dataset != 'imagenet2012':
    raise UserError(f'config.train.color_jitter is applied to ImageNet only (host-side '
                    f'preprocessing); set it to () for {dataset}')
  if (len(strengths) != 4 or min(strengths) < 0 or strengths[3] > 0.5):
    raise UserError(f'config.train.color_jitter must be (brightness, contrast, saturation, '
                    f'hue), each >= 0 and hue <= 0.5, got {tuple(strengths)}')


# ---------------------------------------------------------------------------
# The loop.


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains (or resumes) config.genotype; writes metrics, checkpoints and result.json."""
  # Setup.
  info = data.get_info(config.dataset.name)
  mesh = parallel.make_mesh()
  check_config(config, info, mesh.size, jax.process_count())
  if nb201.is_arch_spec(config.genotype):  # A NAS-Bench-201 cell: its own network.
    genotype = nb201.load_arch(config.genotype)
  else:
    genotype = genotypes.load_genotype(config.genotype,
                                       known_ops=tuple(augment_ops.AUGMENT_OPS))
  is_main = jax.process_index() == 0
  checkpoint.prepare_workdir(workdir, config, mode='augment', write=is_main)

  # Data: the whole train split for training, the test split for evaluation.
  train_source = data.load_source(config.dataset.name, 'train', config.dataset.data_dir,
                                  seed=config.seed, color_jitter=config.train.color_jitter)
  test_source = data.load_source(config.dataset.name, 'test', config.dataset.data_dir)
  train_idx, test_idx = np.arange(len(train_source)), np.arange(len(test_source))
  batch = config.train.batch_size
  steps_per_epoch = len(train_idx) // batch
  if steps_per_epoch == 0:
    raise UserError(f'config.train.batch_size {batch} is larger than the '
                    f'{len(train_idx)} training examples')
  if config.max_steps_per_epoch > 0:
    steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)

  # Model and state (resumed from the newest readable checkpoint, if any).
  checkpoint_every, checkpoints_to_keep = preemption.checkpoint_settings(config)
  if isinstance(genotype, nb201.Arch):
    model = nb201.build_eval_model(config.model, genotype, info.num_classes)
  else:
    model = augment_net.build_augment_model(config.model, genotype, info.num_classes)
  state = init_state(model, config, info)
  # Replicated first, so that a checkpoint is restored straight into the replicated
  # layout: with several processes, moving a restored array there is a cross-host copy.
  state = parallel.replicate(state, mesh)
  state, meta = checkpoint.restore_latest(workdir, state)
  checkpoint.check_resumable(meta, steps_per_epoch, workdir)
  start_step = int(jax.device_get(state['step']))
  start_epoch = start_step // steps_per_epoch
  if meta:
    logging.info('resumed from the checkpoint of step %d in %s', start_step, workdir)
  if is_main:  # Lines of epochs after the checkpoint are written again below.
    checkpoint.truncate_jsonl(os.path.join(workdir, 'metrics.jsonl'), start_epoch)

  train_step = parallel.jit(make_train_step(model, config, info, steps_per_epoch),
                            donate_argnums=(0,))
  eval_step = parallel.jit(make_eval_step(model, info))
  writer = metrics.MetricWriter(workdir, enabled=is_main, first_step=start_step + 1)

  test_acc = test_top5_acc = None
  with preemption.stop_on_sigterm() as stop_request:
    guard = preemption.StepGuard(workdir, steps_per_epoch, checkpoint_every,
                                 checkpoints_to_keep, stop_request,
                                 hint='lower config.train.lr')
    guard.last_saved_step = start_step if meta else None
    step = start_step
    for epoch in range(start_epoch, config.train.epochs):
      epoch_start = time.time()
      loader = data.epoch_loader(train_source, train_idx, batch, config.seed, epoch,
                                 steps_per_epoch, step - epoch * steps_per_epoch,
                                 jax.process_index(), jax.process_count())
      progress = metrics.Progress(steps_per_epoch,
                                  desc=f'epoch {epoch + 1}/{config.train.epochs}',
                                  enabled=is_main)
      progress.n = step - epoch * steps_per_epoch
      epoch_metrics = preemption.EpochMetrics()
      if epoch == start_epoch:
        epoch_metrics.resume(meta, start_step - start_epoch * steps_per_epoch)
      for train_batch in loader:
        state, m = train_step(state, parallel.shard_batch(train_batch, mesh))
        step += 1
        epoch_metrics.append(m)
        guard.add(step, m['finite'])
        progress.step_dispatched(epoch_metrics.steps)
        if guard.after_step(state, step, epoch_metrics):
          progress.close()
          writer.close()
          return guard.preempted_result(step)
      jax.block_until_ready(state)
      progress.close()
      guard.check_finite()
      host = epoch_metrics.host()

      test_loss, test_acc, test_top5_acc = search.evaluate(eval_step, state, test_source,
                                                           test_idx, config, mesh)
      epoch_summary = {
          'epoch': epoch + 1,
          'train_loss': epoch_metrics.mean(host, 'train_loss'),
          'train_acc': epoch_metrics.mean(host, 'train_acc'),
          'test_loss': test_loss, 'test_acc': test_acc, 'test_top5_acc': test_top5_acc,
          'lr': host[-1]['lr'],
          'drop_path_prob': config.model.drop_path_prob * epoch / config.train.epochs,
          'epoch_seconds': time.time() - epoch_start,
      }
      writer.write(step, epoch_summary)
      guard.save(state, step)
      logging.info('epoch %d: train_acc %.4f test_acc %.4f', epoch + 1,
                   epoch_summary['train_acc'], test_acc)
      if stop_request and epoch + 1 < config.train.epochs:
        writer.close()
        return guard.preempted_result(step)
  writer.close()

  if test_acc is None:  # Resumed a finished run: evaluate its final state.
    _, test_acc, test_top5_acc = search.evaluate(eval_step, state, test_source, test_idx,
                                                 config, mesh)
  result = {
      'test_acc': test_acc,
      'test_top5_acc': test_top5_acc,
      'params': summary.count_weights(jax.device_get(state['params'])),
      'genotype': (nb201.arch_to_string(genotype) if isinstance(genotype, nb201.Arch)
                   else genotypes.genotype_to_text(genotype)),
  }
  if is_main:
    checkpoint.write_json(os.path.join(workdir, 'result.json'), result)
  return result

"""The DARTS search: bilevel optimization of a supernet, then discretization.

One readable trainer in sections: setup, data, model and state, step,
checkpoint, loop, outputs. `search(config, workdir)` is the entry point
(`darts_jax.main` calls it); it resumes from the workdir's checkpoint when
there is one.
"""

import json
import math
import os
import time
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from darts_jax import architect
from darts_jax import augmentation
from darts_jax import checkpoint
from darts_jax import data
from darts_jax import genotypes
from darts_jax import metrics
from darts_jax import parallel
from darts_jax import search_ops
from darts_jax import supernet
from darts_jax.errors import UserError


# ---------------------------------------------------------------------------
# Model and pure maths.


def build_model(config, num_classes: int) -> supernet.SearchNetwork:
  primitives = search_ops.check_primitives(config.search_space.primitives)
  return supernet.SearchNetwork(
      primitives=primitives, num_classes=num_classes,
      init_channels=config.model.init_channels, layers=config.model.layers,
      steps=config.search_space.steps, multiplier=config.search_space.multiplier,
      stem_multiplier=config.model.stem_multiplier,
      depthwise_impl=config.model.depthwise_impl)


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
  """The reference's per-epoch cosine annealing from lr to lr_min."""
  t = config.train
  return t.lr_min + 0.5 * (t.lr - t.lr_min) * (1 + jnp.cos(jnp.pi * epoch / t.epochs))


def sgd_momentum_update(params, grads, buffer, lr, momentum, weight_decay, grad_clip):
  """PyTorch SGD (momentum, L2 weight decay) after global-norm clipping."""
  if grad_clip > 0:
    norm = architect.global_norm(grads)
    scale = jnp.minimum(1.0, grad_clip / (norm + 1e-6))
    grads = jax.tree.map(lambda g: g * scale, grads)
  buffer = jax.tree.map(lambda m, g, w: momentum * m + g + weight_decay * w,
                        buffer, grads, params)
  params = jax.tree.map(lambda w, m: w - lr * m, params, buffer)
  return params, buffer


def alpha_optimizer(config) -> optax.GradientTransformation:
  """Adam with L2 weight decay added to the gradient (PyTorch Adam semantics)."""
  a = config.arch
  return optax.chain(optax.add_decayed_weights(a.weight_decay),
                     optax.adam(a.lr, b1=a.beta1, b2=a.beta2))


def preprocess(key, batch, info: data.DatasetInfo, crop_padding: int):
  images = batch['image']
  if crop_padding > 0:
    images = augmentation.random_crop_flip(key, images, crop_padding)
  return {'image': augmentation.normalize(images, info.mean, info.std),
          'label': batch['label']}


def make_loss_fn(model, batch_stats):
  """loss_fn(params, alphas, batch) -> (loss, (logits, new_batch_stats))."""

  def loss_fn(params, alphas, batch):
    logits, updates = model.apply(
        {'params': params, 'batch_stats': batch_stats}, batch['image'], edge_weights(alphas),
        train=True, mutable=['batch_stats'])
    return cross_entropy(logits, batch['label']), (logits, updates['batch_stats'])

  return loss_fn


def make_search_step(model, config, info: data.DatasetInfo, steps_per_epoch: int):
  """One jitted bilevel step: an alpha step on a validation batch, then a weight step."""
  a_tx = alpha_optimizer(config)
  t = config.train

  def step(state, train_batch, val_batch):
    key = jax.random.fold_in(jax.random.key(config.seed), state['step'])
    k_train, k_val = jax.random.split(key)
    train_batch = preprocess(k_train, train_batch, info, t.crop_padding)
    val_batch = preprocess(k_val, val_batch, info, t.crop_padding)
    lr = cosine_lr(config, state['step'] // steps_per_epoch)

    # Architecture step (on the validation batch).
    loss_fn = make_loss_fn(model, state['batch_stats'])
    a_grads, val_loss, (val_logits, _) = architect.alpha_grad(
        config.arch.order, loss_fn, state['params'], state['alphas'], train_batch, val_batch,
        lr, state['momentum'], t.momentum, t.weight_decay)
    a_updates, a_opt = a_tx.update(a_grads, state['alpha_opt'], state['alphas'])
    alphas = optax.apply_updates(state['alphas'], a_updates)

    # Weight step (on the training batch, with the new alphas).
    (train_loss, (train_logits, batch_stats)), w_grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state['params'], alphas, train_batch)
    params, momentum = sgd_momentum_update(
        state['params'], w_grads, state['momentum'], lr, t.momentum, t.weight_decay,
        t.grad_clip)

    finite = jnp.isfinite(train_loss) & jnp.isfinite(val_loss) & jnp.all(
        jnp.array([jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(alphas)]))
    new_state = {'step': state['step'] + 1, 'params': params, 'batch_stats': batch_stats,
                 'alphas': alphas, 'momentum': momentum, 'alpha_opt': a_opt}
    step_metrics = {
        'train_loss': train_loss, 'val_loss': val_loss, 'lr': lr, 'finite': finite,
        'train_acc': jnp.mean(jnp.argmax(train_logits, -1) == train_batch['label']),
        'val_acc': jnp.mean(jnp.argmax(val_logits, -1) == val_batch['label']),
    }
    return new_state, step_metrics

  return step


def make_eval_step(model, info: data.DatasetInfo):
  """Loss/accuracy sums of a batch with running BN statistics (the reference's infer)."""

  def eval_step(state, batch, mask):
    images = augmentation.normalize(batch['image'], info.mean, info.std)
    logits = model.apply({'params': state['params'], 'batch_stats': state['batch_stats']},
                         images, edge_weights(state['alphas']), train=False)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label'])
    correct = jnp.argmax(logits, -1) == batch['label']
    return jnp.sum(losses * mask), jnp.sum(correct * mask), jnp.sum(mask)

  return eval_step


def init_state(model, config, info: data.DatasetInfo):
  """Weights, batch statistics, alphas and both optimizer states, all explicit."""
  key = jax.random.key(config.seed)
  k_model, k_alpha = jax.random.split(key)
  num_ops = len(model.primitives)
  n_edges = genotypes.num_edges(config.search_space.steps)
  alphas = init_alphas(k_alpha, n_edges, num_ops)
  # Parameter shapes do not depend on the batch, so init on one image.
  x = jnp.zeros((1,) + info.image_shape, jnp.float32)
  # 'rbg' random bits compile several times faster than threefry on XLA:CPU
  # (one threefry expansion per parameter array otherwise dominates the init).
  k_model = jax.random.key(jax.random.randint(k_model, (), 0, 2**31 - 1), impl='rbg')
  variables = jax.jit(lambda k: model.init(k, x, edge_weights(alphas), train=True))(k_model)
  params = variables['params']
  return {
      'step': jnp.zeros((), jnp.int32),
      'params': params,
      'batch_stats': variables['batch_stats'],
      'alphas': alphas,
      'momentum': jax.tree.map(jnp.zeros_like, params),
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
  check_image_size(info, len(supernet.reduction_layers(config.model.layers)),
                   config.model.layers)


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

  # Data: the train split only, halved into search-train and search-val.
  source = data.load_source(config.dataset.name, 'train', config.dataset.data_dir)
  train_idx, val_idx = data.search_split(len(source), config.dataset.train_portion,
                                         config.seed)
  batch = config.train.batch_size
  steps_per_epoch = min(len(train_idx), len(val_idx)) // batch
  if steps_per_epoch == 0:
    raise UserError(f'config.train.batch_size {batch} is larger than the '
                    f'{min(len(train_idx), len(val_idx))} examples of each search split')
  if config.max_steps_per_epoch > 0:
    steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)

  # Model and state.
  model = build_model(config, info.num_classes)
  state = init_state(model, config, info)
  state, start_epoch = checkpoint.restore_latest(workdir, state)
  state = parallel.replicate(state, mesh)
  if start_epoch:
    logging.info('resumed from the checkpoint of epoch %d in %s', start_epoch, workdir)

  search_step = jax.jit(make_search_step(model, config, info, steps_per_epoch),
                        donate_argnums=(0,))
  eval_step = jax.jit(make_eval_step(model, info))
  writer = metrics.MetricWriter(workdir, enabled=is_main)
  primitives = list(model.primitives)

  epoch_summary = {}
  # `max_epochs_this_run` (optional) stops early, e.g. to test resuming.
  end_epoch = config.train.epochs
  if config.get('max_epochs_this_run', 0) > 0:
    end_epoch = min(end_epoch, start_epoch + config.max_epochs_this_run)
  for epoch in range(start_epoch, end_epoch):
    epoch_start = time.time()
    loaders = [
        data.BatchLoader(source, data.epoch_batches(
            idx, batch, config.seed * 2 + k, epoch, jax.process_index(),
            jax.process_count())[:steps_per_epoch])
        for k, idx in enumerate((train_idx, val_idx))
    ]
    progress = metrics.Progress(steps_per_epoch, desc=f'epoch {epoch + 1}/{config.train.epochs}',
                                enabled=is_main)
    step_metrics = []
    loop_start = time.time()
    first_step_seconds = None
    for train_batch, val_batch in zip(*loaders):
      state, m = search_step(state, parallel.shard_batch(train_batch, mesh),
                             parallel.shard_batch(val_batch, mesh))
      step_metrics.append(m)
      if first_step_seconds is None:  # Includes the compile in the first epoch.
        jax.block_until_ready(m)
        first_step_seconds = time.time() - loop_start
        rest_start = time.time()
      progress.update(1)
    jax.block_until_ready(state)
    rest_seconds = time.time() - rest_start
    progress.close()
    host = jax.device_get(step_metrics)
    bad = [i for i, m in enumerate(host) if not m['finite']]
    if bad:
      raise UserError(
          f'non-finite loss or alphas at step {epoch * steps_per_epoch + bad[0] + 1} '
          f'(epoch {epoch + 1}); the last good checkpoint is kept; lower config.train.lr '
          'or config.arch.lr')

    val_loss, val_acc = evaluate(eval_step, state, source, val_idx, config, mesh)
    alphas = jax.device_get(state['alphas'])
    genotype = genotypes.derive_genotype(alphas['normal'], alphas['reduce'], primitives,
                                         config.search_space.steps,
                                         config.search_space.multiplier)
    epoch_summary = {
        'epoch': epoch + 1,
        'train_loss': float(np.mean([m['train_loss'] for m in host])),
        'train_acc': float(np.mean([m['train_acc'] for m in host])),
        'search_val_loss': float(np.mean([m['val_loss'] for m in host])),
        'search_val_acc': float(np.mean([m['val_acc'] for m in host])),
        'val_loss': val_loss, 'val_acc': val_acc,
        'lr': float(host[-1]['lr']),
        'alpha_lr': config.arch.lr,
        'alpha_entropy_normal': float(alpha_entropy(alphas['normal'])),
        'alpha_entropy_reduce': float(alpha_entropy(alphas['reduce'])),
        'first_step_seconds': first_step_seconds,
        'step_seconds': (rest_seconds / (len(host) - 1) if len(host) > 1
                         else first_step_seconds),
        'epoch_seconds': time.time() - epoch_start,
        'data_wait_fraction': sum(l.wait_seconds for l in loaders) / max(
            time.time() - epoch_start, 1e-9),
    }
    step = (epoch + 1) * steps_per_epoch
    if is_main:
      writer.write(step, epoch_summary)
      for cell in ('normal', 'reduce'):
        writer.write_alphas(step, cell, jax.nn.softmax(alphas[cell], -1), primitives)
      write_epoch_outputs(workdir, epoch + 1, alphas, primitives, genotype)
    checkpoint.save(workdir, state, epoch + 1, write=is_main)
    logging.info('epoch %d: train_acc %.4f val_acc %.4f genotype %s', epoch + 1,
                 epoch_summary['train_acc'], val_acc, genotypes.genotype_to_text(genotype))

  writer.close()
  alphas = jax.device_get(state['alphas'])
  genotype = genotypes.derive_genotype(alphas['normal'], alphas['reduce'], primitives,
                                       config.search_space.steps, config.search_space.multiplier)
  result = {'genotype': genotypes.genotype_to_text(genotype),
            'val_acc': epoch_summary.get('val_acc'), 'epochs': config.train.epochs}
  if is_main:
    genotypes.save_genotype(genotype, workdir)
    checkpoint.write_npz(os.path.join(workdir, 'alphas.npz'),
                         primitives=np.array(primitives), **alphas)
    checkpoint.write_json(os.path.join(workdir, 'result.json'), result)
    from darts_jax import report  # pylint: disable=g-import-not-at-top
    try:
      report.write_report(workdir)
    except Exception as e:  # pylint: disable=broad-except
      logging.warning('could not write the run report: %s', e)
  return result


def evaluate(eval_step, state, source, indices, config, mesh):
  """Mean loss and accuracy over `indices` (padded to whole batches, masked)."""
  batch = config.eval_batch_size
  batch -= batch % mesh.size
  n = len(indices)
  loss_sum = correct = count = 0.0
  for start in range(0, n, batch):
    idx = indices[start:start + batch]
    mask = np.zeros(batch, np.float32)
    mask[:len(idx)] = 1.0
    idx = np.concatenate([idx, np.full(batch - len(idx), idx[0])])
    images, labels = source.get(idx)
    l, c, k = eval_step(state, parallel.shard_batch({'image': images, 'label': labels}, mesh),
                        parallel.shard_batch(mask, mesh))
    loss_sum, correct, count = loss_sum + float(l), correct + float(c), count + float(k)
  return loss_sum / count, correct / count


def write_epoch_outputs(workdir, epoch, alphas, primitives, genotype):
  checkpoint.write_npz(os.path.join(workdir, 'alphas', f'epoch_{epoch:03d}.npz'),
                       primitives=np.array(primitives), **alphas)
  with open(os.path.join(workdir, 'genotypes.jsonl'), 'a', encoding='utf-8') as f:
    f.write(json.dumps({'epoch': epoch, 'genotype': genotypes.genotype_to_json(genotype),
                        'text': genotypes.genotype_to_text(genotype)}) + '\n')
  from darts_jax import visualize  # Imports matplotlib: only where pictures are drawn.
  visualize.draw_epoch(workdir, epoch, genotype, alphas['normal'], alphas['reduce'],
                       primitives)

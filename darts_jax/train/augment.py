"""The evaluation ("augment"): train a fixed architecture from scratch and test it.

`train_and_evaluate(config, workdir)` is the entry point (`darts_jax.main` calls it for
config.mode == 'augment'); it trains on the whole train split, evaluates on the test
split every epoch and resumes from the workdir's checkpoint when there is one. The
architecture's space (config.search_space.name, or the space that reads
config.genotype) builds the network.
"""

from __future__ import annotations

import os

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from darts_jax import data
from darts_jax import spaces
from darts_jax.errors import UserError
from darts_jax.nn import initializers
from darts_jax.nn import params as params_lib
from darts_jax.runtime import checkpoint
from darts_jax.runtime import parallel
from darts_jax.runtime import preemption
from darts_jax.train import checks
from darts_jax.train import loop
from darts_jax.train import settings
from darts_jax.train import steps


def init_state(model, image_shape, seed: int) -> dict:
  """Weights, batch statistics and the momentum buffer, all explicit."""
  x = jnp.zeros((1,) + tuple(image_shape), jnp.float32)  # Shapes do not depend on the batch.
  variables = initializers.host_init(lambda k: model.init(k, x, train=True),
                                     jax.random.key(seed), seed)
  params = variables['params']
  return {
      'step': jnp.zeros((), jnp.int32),
      'params': params,
      'batch_stats': variables['batch_stats'],
      'momentum': initializers.zeros_like(params),
  }


def make_train_step(model, config, info, steps_per_epoch: int):
  """The SGD step of config's training from scratch (not jitted)."""
  m, t = config.model, config.train
  return steps.make_train_step(
      model, settings.WeightOptimizer.from_config(t), seed=config.seed, info=info,
      crop_padding=t.crop_padding, cutout=t.cutout, steps_per_epoch=steps_per_epoch,
      dtype=settings.compute_dtype(m), drop_path_prob=m.get('drop_path_prob', 0.0),
      label_smoothing=t.label_smoothing, auxiliary_weight=m.get('auxiliary_weight', 0.0))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains (or resumes) config.genotype; writes metrics, checkpoints and result.json."""
  # Setup: the config is read here, once.
  info = data.dataset_info(config.dataset)
  mesh = parallel.make_mesh()
  checks.check_evaluation(config, mesh.size, jax.process_count())
  space_name = config.get('search_space', {}).get('name', '')
  space, arch = spaces.load_arch(config.genotype, space_name)
  model = space.eval_network(arch, config.model, info)
  is_main = jax.process_index() == 0
  checkpoint.prepare_workdir(workdir, config, mode='augment', write=is_main)

  # Data: the whole train split for training, the test split for evaluation.
  train_source = data.load_split(config.dataset, 'train', seed=config.seed,
                                 color_jitter=config.train.color_jitter)
  test_source = data.load_split(config.dataset, 'test')
  train_idx, test_idx = np.arange(len(train_source)), np.arange(len(test_source))

  def steps_per_epoch_of(batch: int) -> int:
    if len(train_idx) < batch:
      raise UserError(f'config.train.batch_size {batch} is larger than the '
                      f'{len(train_idx)} training examples')
    steps = len(train_idx) // batch
    return min(steps, config.max_steps_per_epoch) if config.max_steps_per_epoch > 0 else steps

  batch = settings.batch_size(config.train)
  if batch is not None:
    steps_per_epoch_of(batch)

  # Model and state (resumed from the newest readable checkpoint, if any).
  state = init_state(model, info.image_shape, config.seed)
  # Replicated first, so that a checkpoint is restored straight into the replicated
  # layout: with several processes, moving a restored array there is a cross-host copy.
  state = parallel.replicate(state, mesh)
  state, meta = checkpoint.restore_latest(workdir, state)

  # Steps: the training step compiled before the first (and checked against the device's
  # memory; config.train.batch_size 'auto' picks the largest batch that fits).
  data_parts = [(train_source, train_idx, config.seed)]
  train_step, batch = loop.compile_step(
      lambda b: make_train_step(model, config, info, steps_per_epoch_of(b)), state,
      data_parts, parallel.shard_batch, mesh, batch, len(train_idx),
      config.get('memory_limit_gb', 0.0))
  steps_per_epoch = steps_per_epoch_of(batch)
  test_step = parallel.jit(steps.make_test_step(model, info))

  def test(state):
    return loop.evaluate(test_step, state, test_source, test_idx, config.eval_batch_size, mesh)

  last = {}  # The last epoch's test accuracies of this run.

  def end_of_epoch(epoch, state, host, writer):
    del writer
    test_loss, test_acc, test_top5_acc = test(state)
    last.update(test_acc=test_acc, test_top5_acc=test_top5_acc)
    logging.info('epoch %d: train_acc %.4f test_acc %.4f', epoch + 1,
                 preemption.EpochMetrics.mean(host, 'train_acc'), test_acc)
    return {
        'train_loss': preemption.EpochMetrics.mean(host, 'train_loss'),
        'train_acc': preemption.EpochMetrics.mean(host, 'train_acc'),
        'test_loss': test_loss, 'test_acc': test_acc, 'test_top5_acc': test_top5_acc,
        'lr': host[-1]['lr'],
        'drop_path_prob': config.model.get('drop_path_prob', 0.0) * epoch / config.train.epochs,
    }, False

  every, keep = preemption.checkpoint_settings(config)
  run = loop.run_epochs(loop.Loop(
      workdir=workdir, step=train_step, parts=data_parts,
      batch_size=batch, steps_per_epoch=steps_per_epoch, epochs=config.train.epochs,
      end_epoch=config.train.epochs, end_of_epoch=end_of_epoch, hint='lower config.train.lr',
      checkpoint_every=every, checkpoints_to_keep=keep), state, meta, mesh)
  if run.preempted:
    return run.preempted
  state = run.state

  if not last:  # Resumed a finished run: evaluate its final state.
    _, last['test_acc'], last['test_top5_acc'] = test(state)
  result = {
      'test_acc': last['test_acc'],
      'test_top5_acc': last['test_top5_acc'],
      'params': params_lib.count_weights(jax.device_get(state['params'])),
      'genotype': space.to_text(arch),
  }
  if is_main:
    checkpoint.write_json(os.path.join(workdir, 'result.json'), result)
  return result

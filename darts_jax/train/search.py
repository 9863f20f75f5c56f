"""The search: bilevel optimization of a supernet, then discretization.

`search(config, workdir)` is the entry point (`darts_jax.main` calls it for
config.mode == 'search'); it resumes from the workdir's checkpoint when there is one.
The space and the method come from their registries (config.search_space.name,
config.method.name); everything they decide goes through their interfaces.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections

from darts_jax import data
from darts_jax import methods
from darts_jax import spaces
from darts_jax.errors import UserError
from darts_jax.methods.base import EpochEnd, Forward, SearchEnd
from darts_jax.nn import initializers
from darts_jax.runtime import checkpoint
from darts_jax.runtime import parallel
from darts_jax.runtime import preemption
from darts_jax.train import checks
from darts_jax.train import loop
from darts_jax.train import outputs
from darts_jax.train import settings
from darts_jax.train import steps


@dataclasses.dataclass(frozen=True)
class SearchParts:
  """A search config's pieces, read from it once: the space, the method, the optimizers,
  the supernet and what its steps need (the trainer and experiments/benchmark.py)."""
  space: Any
  method: Any
  weight_opt: settings.WeightOptimizer
  arch_opt: settings.ArchOptimizer
  model: Any
  seed: int
  crop_padding: int
  dtype: Any
  track_running_stats: bool

  @classmethod
  def from_config(cls, config, num_classes: int) -> SearchParts:
    space = spaces.from_config(config)
    method = methods.from_config(config, space)
    return cls(space=space, method=method,
               weight_opt=settings.WeightOptimizer.from_config(config.train),
               arch_opt=settings.ArchOptimizer.from_config(config.arch),
               model=space.supernet(num_classes, method.supernet_options()),
               seed=config.seed, crop_padding=config.train.crop_padding,
               dtype=settings.compute_dtype(config.model),
               track_running_stats=config.model.get('track_running_stats', True))

  def init_state(self, image_shape) -> dict:
    """Weights, batch statistics, alphas and both optimizer states, all explicit."""
    k_model, k_alpha = jax.random.split(jax.random.key(self.seed))
    alphas = self.method.init_alphas(k_alpha)
    # Parameter shapes do not depend on the batch, so init on one image; the
    # parameters are drawn on the host (much faster to compile, see initializers).
    x = jnp.zeros((1,) + tuple(image_shape), jnp.float32)
    weights = self.method.edge_weights(alphas, Forward.VALIDATION, None, 0)
    variables = initializers.host_init(lambda k: self.model.init(k, x, weights, train=True),
                                       k_model, self.seed)
    params = variables['params']
    return {
        'step': jnp.zeros((), jnp.int32),
        'params': params,
        'batch_stats': variables['batch_stats'],
        'alphas': alphas,
        'momentum': initializers.zeros_like(params),
        'alpha_opt': self.arch_opt.optimizer().init(alphas),
    }

  def search_step(self, info, steps_per_epoch: int):
    """The bilevel step (not jitted)."""
    return steps.make_search_step(
        self.model, self.method, self.weight_opt, self.arch_opt, seed=self.seed, info=info,
        crop_padding=self.crop_padding, steps_per_epoch=steps_per_epoch, dtype=self.dtype,
        track_running_stats=self.track_running_stats)

  def eval_step(self, info):
    """Validation sums of a batch (not jitted)."""
    return steps.make_search_eval_step(self.model, self.method, info,
                                       batch_statistics=not self.track_running_stats)


def check_config(config, info, num_devices: int = 1, process_count: int = 1) -> SearchParts:
  """Reads a search config's pieces and checks them (UserError naming the fix)."""
  parts = SearchParts.from_config(config, info.num_classes)
  checks.check_search(config, info, parts.space, parts.method, parts.arch_opt, num_devices,
                      process_count)
  return parts


def search(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs (or resumes) a search; writes metrics, alphas and architectures to `workdir`."""
  # Setup: the config is read here, once.
  info = data.get_info(config.dataset.name)
  mesh = parallel.make_mesh()
  parts = check_config(config, info, mesh.size, jax.process_count())
  space, method, arch_opt = parts.space, parts.method, parts.arch_opt
  is_main = jax.process_index() == 0
  checkpoint.prepare_workdir(workdir, config, mode='search', write=is_main)

  # Data: the train split only (or a sample of it), divided into search-train and
  # search-val. An epoch is one pass over search-train; a smaller search-val is cycled.
  source = data.load_source(config.dataset.name, 'train', config.dataset.data_dir,
                            seed=config.seed)
  split = config.dataset.get('search_split', 'ordered')
  subset = config.dataset.get('search_subset', 1.0)
  portion = config.dataset.train_portion
  train_idx, val_idx = data.search_indices(source, split, portion, config.seed, subset)
  batch = config.train.batch_size
  if min(len(train_idx), len(val_idx)) < batch:
    raise UserError(f'config.train.batch_size {batch} is larger than the '
                    f'{min(len(train_idx), len(val_idx))} examples of each search split')
  steps_per_epoch = len(train_idx) // batch
  if config.max_steps_per_epoch > 0:
    steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)
  data_split = data.split_digest(train_idx, val_idx)

  # Model and state (resumed from the newest readable checkpoint, if any).
  state = parts.init_state(info.image_shape)
  # Replicated first, so that a checkpoint is restored straight into the replicated
  # layout: with several processes, moving a restored array there is a cross-host copy.
  state = parallel.replicate(state, mesh)
  state, meta = checkpoint.restore_latest(workdir, state)
  if meta:
    checkpoint.check_same_data_split(meta, data_split, workdir, unrecorded=data.split_digest(
        *data.search_split_random(len(source), portion, config.seed, subset)))

  # Steps.
  search_step = parallel.jit(parts.search_step(info, steps_per_epoch), donate_argnums=(0,))
  eval_step = parallel.jit(parts.eval_step(info))

  def validate(state):
    return loop.evaluate(eval_step, state, source, val_idx, config.eval_batch_size, mesh)

  last_line = {}  # The last epoch's metrics line of this run.

  def end_of_epoch(epoch, state, host, writer):
    val_loss, val_acc = validate(state)
    alphas = jax.device_get(state['alphas'])
    weights = method.derivation_weights(alphas)
    arch = space.derive(weights)
    line = {
        'train_loss': preemption.EpochMetrics.mean(host, 'train_loss'),
        'train_acc': preemption.EpochMetrics.mean(host, 'train_acc'),
        'search_val_loss': preemption.EpochMetrics.mean(host, 'val_loss'),
        'search_val_acc': preemption.EpochMetrics.mean(host, 'val_acc'),
        'val_loss': val_loss, 'val_acc': val_acc,
        'lr': host[-1]['lr'],
        'alpha_lr': arch_opt.lr,
        **{f'alpha_entropy_{c}': float(steps.alpha_entropy(alphas[c]))
           for c in space.cell_types},
    }
    last_line.update(line)
    if is_main:
      step = int(jax.device_get(state['step']))
      for cell, w in weights.items():
        writer.write_alphas(step, cell, w, list(space.primitives), space.edges())
      outputs.write_epoch(workdir, epoch + 1, space, alphas, arch)
    logging.info('epoch %d: train_acc %.4f val_acc %.4f genotype %s', epoch + 1,
                 line['train_acc'], val_acc, space.to_text(arch))
    return line, method.end_of_epoch(EpochEnd(epoch + 1, alphas, dict(line)))

  end_epoch = config.train.epochs
  if config.get('max_epochs_this_run', 0) > 0:  # Stops early, e.g. to test resuming.
    start_epoch = int(jax.device_get(state['step'])) // steps_per_epoch
    end_epoch = min(end_epoch, start_epoch + config.max_epochs_this_run)
  every, keep = preemption.checkpoint_settings(config)
  run = loop.run_epochs(loop.Loop(
      workdir=workdir, step=search_step,
      parts=[(source, idx, config.seed * 2 + k) for k, idx in enumerate((train_idx, val_idx))],
      batch_size=batch, steps_per_epoch=steps_per_epoch, epochs=config.train.epochs,
      end_epoch=end_epoch, end_of_epoch=end_of_epoch,
      hint='lower config.train.lr or config.arch.lr', checkpoint_every=every,
      checkpoints_to_keep=keep, data_split=data_split,
      jsonl_files=('metrics.jsonl', 'genotypes.jsonl')), state, meta, mesh)
  if run.preempted:
    return run.preempted
  state = run.state

  # The end of the search: the method's last word (random_ws ranks its candidates), the
  # derived architecture and the outputs.
  def validation_accuracy(alphas, num_examples: int) -> float:
    idx = val_idx[:num_examples] if num_examples > 0 else val_idx
    candidate = dict(state, alphas=parallel.replicate(alphas, mesh))
    return loop.evaluate(eval_step, candidate, source, idx, config.eval_batch_size, mesh)[1]

  alphas, method_result = method.end_of_search(SearchEnd(
      jax.device_get(state['alphas']), config.seed, validation_accuracy))
  alphas = jax.device_get(alphas)
  arch = space.derive(method.derivation_weights(alphas))
  result = {'genotype': space.to_text(arch), 'val_acc': last_line.get('val_acc'),
            'epochs': config.train.epochs, 'method': method.name, **method_result,
            **space.benchmark(arch)}
  if is_main:
    outputs.write_result(workdir, space, arch, alphas, result)
  return result

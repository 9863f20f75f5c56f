"""What the search trainers share: a config's search pieces and its data, read once.

`SearchParts` (the space, the method, the optimizers, the supernet, its steps) and
`SearchData` (the search split) serve `search.search` (one seed) and
`population.search_population` (a seed axis), and experiments/benchmark.py.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from darts_jax import data
from darts_jax import methods
from darts_jax import spaces
from darts_jax.errors import UserError
from darts_jax.methods.base import EpochEnd, Forward, SearchEnd
from darts_jax.nn import initializers
from darts_jax.runtime import checkpoint
from darts_jax.runtime import preemption
from darts_jax.train import budget as budget_lib
from darts_jax.train import checks
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
  budget: Any = None  # A budget.Budget, or None.

  @classmethod
  def from_config(cls, config, num_classes: int, info=None) -> SearchParts:
    """`info` (the dataset's DatasetInfo) is needed for a budget's op costs."""
    space = spaces.from_config(config)
    method = methods.from_config(config, space)
    return cls(space=space, method=method,
               weight_opt=settings.WeightOptimizer.from_config(config.train),
               arch_opt=settings.ArchOptimizer.from_config(config.arch),
               model=space.supernet(num_classes, method.supernet_options()),
               seed=config.seed, crop_padding=config.train.crop_padding,
               dtype=settings.compute_dtype(config.model),
               track_running_stats=config.model.get('track_running_stats', True),
               budget=None if info is None else budget_lib.Budget.from_config(config, space,
                                                                               info))

  def derive(self, weights: dict):
    """The space's derivation of the method's weights, within the budget's target."""
    if self.budget is None:
      return self.space.derive(weights)
    return self.budget.derive(self.space, weights)

  def init_state(self, image_shape, seed: int | None = None) -> dict:
    """Weights, batch statistics, alphas and both optimizer states, all explicit (of the
    config's seed, or of `seed`)."""
    seed = self.seed if seed is None else seed
    k_model, k_alpha = jax.random.split(jax.random.key(seed))
    alphas = self.method.init_alphas(k_alpha)
    # Parameter shapes do not depend on the batch, so init on one image; the
    # parameters are drawn on the host (much faster to compile, see initializers).
    x = jnp.zeros((1,) + tuple(image_shape), jnp.float32)
    weights = self.method.edge_weights(alphas, Forward.VALIDATION, None, 0)
    variables = initializers.host_init(lambda k: self.model.init(k, x, weights, train=True),
                                       k_model, seed)
    params = variables['params']
    return {
        'step': jnp.zeros((), jnp.int32),
        'params': params,
        'batch_stats': variables['batch_stats'],
        'alphas': alphas,
        'momentum': initializers.zeros_like(params),
        'alpha_opt': self.arch_opt.optimizer().init(alphas),
    }

  def search_step(self, info, steps_per_epoch: int, seeded: bool = True):
    """The bilevel step (not jitted); seeded=False: it takes the seed as its first argument
    (steps.make_search_step)."""
    return steps.make_search_step(
        self.model, self.method, self.weight_opt, self.arch_opt,
        seed=self.seed if seeded else None, info=info, budget=self.budget,
        crop_padding=self.crop_padding, steps_per_epoch=steps_per_epoch, dtype=self.dtype,
        track_running_stats=self.track_running_stats)

  def eval_step(self, info):
    """Validation sums of a batch (not jitted)."""
    return steps.make_search_eval_step(self.model, self.method, info,
                                       batch_statistics=not self.track_running_stats)


def check_config(config, info, num_devices: int = 1, process_count: int = 1) -> SearchParts:
  """Reads a search config's pieces and checks them (UserError naming the fix)."""
  parts = SearchParts.from_config(config, info.num_classes, info)
  checks.check_search(config, info, parts.space, parts.method, parts.arch_opt, num_devices,
                      process_count)
  return parts


@dataclasses.dataclass(frozen=True)
class SearchData:
  """The train split of a search config, divided into search-train and search-val."""
  source: Any
  train_idx: np.ndarray
  val_idx: np.ndarray
  batch_size: int
  steps_per_epoch: int
  split_digest: str
  unrecorded_digest: str  # The split a checkpoint from before splits were recorded had.
  max_steps_per_epoch: int = -1  # > 0 caps the steps of every epoch.

  @classmethod
  def from_config(cls, config) -> SearchData:
    """An epoch is one pass over search-train; a smaller search-val is cycled."""
    source = data.load_split(config.dataset, 'train', seed=config.seed)
    split = config.dataset.get('search_split', 'ordered')
    subset = config.dataset.get('search_subset', 1.0)
    portion = config.dataset.train_portion
    train_idx, val_idx = data.search_indices(source, split, portion, config.seed, subset)
    split = cls(source, train_idx, val_idx, 0, 0, data.split_digest(train_idx, val_idx),
                data.split_digest(*data.search_split_random(len(source), portion,
                                                            config.seed, subset)),
                config.max_steps_per_epoch)
    batch = settings.batch_size(config.train)
    return split if batch is None else split.with_batch(batch)

  @property
  def max_batch(self) -> int:
    return min(len(self.train_idx), len(self.val_idx))

  def with_batch(self, batch: int) -> SearchData:
    """This split read in batches of `batch` (config.train.batch_size 'auto' is None until
    runtime.memory picks one: then batch_size and steps_per_epoch are 0)."""
    if self.max_batch < batch:
      raise UserError(f'config.train.batch_size {batch} is larger than the '
                      f'{self.max_batch} examples of each search split')
    steps_per_epoch = len(self.train_idx) // batch
    if self.max_steps_per_epoch > 0:
      steps_per_epoch = min(steps_per_epoch, self.max_steps_per_epoch)
    return dataclasses.replace(self, batch_size=batch, steps_per_epoch=steps_per_epoch)

  def check_resumed(self, meta, workdir: str) -> None:
    """A restored checkpoint was written on this split."""
    if meta:
      checkpoint.check_same_data_split(meta, self.split_digest, workdir,
                                       unrecorded=self.unrecorded_digest)


def end_epoch(config, start_step: int, steps_per_epoch: int) -> int:
  """The epoch this call of a search stops after (config.max_epochs_this_run, e.g. to test
  resuming, stops it early)."""
  end = config.train.epochs
  if config.get('max_epochs_this_run', 0) > 0:
    end = min(end, start_step // steps_per_epoch + config.max_epochs_this_run)
  return end


def epoch_line(host: list, val_loss: float, val_acc: float, alphas: dict, space,
               alpha_lr: float) -> dict:
  """One seed's metrics.jsonl line of an epoch (its per-step host metrics, its validation,
  its alphas), without the timings the loop adds."""
  mean = preemption.EpochMetrics.mean
  return {
      'train_loss': mean(host, 'train_loss'), 'train_acc': mean(host, 'train_acc'),
      'search_val_loss': mean(host, 'val_loss'), 'search_val_acc': mean(host, 'val_acc'),
      'val_loss': val_loss, 'val_acc': val_acc, 'lr': host[-1]['lr'], 'alpha_lr': alpha_lr,
      **{f'alpha_entropy_{c}': float(steps.alpha_entropy(alphas[c])) for c in space.cell_types},
  }


def end_of_epoch(parts: SearchParts, epoch: int, alphas: dict, line: dict, writer, step: int,
                 workdir: str, write: bool):
  """The derived architecture of an epoch's alphas, its outputs (when `write`) and the
  method's end-of-epoch decision: (arch, stop)."""
  weights = parts.method.derivation_weights(alphas)
  arch = parts.derive(weights)
  if parts.budget is not None:
    line[f'derived_{parts.budget.kind}'] = parts.budget.cost(parts.space, arch)
  if write:
    for cell, w in weights.items():
      writer.write_alphas(step, cell, w, list(parts.space.primitives), parts.space.edges())
    outputs.write_epoch(workdir, epoch + 1, parts.space, alphas, arch)
  return arch, parts.method.end_of_epoch(EpochEnd(epoch + 1, alphas, dict(line)))


def search_result(parts: SearchParts, alphas: dict, seed: int, validation_accuracy,
                  val_acc, epochs: int) -> tuple[Any, dict, dict]:
  """The end of a search for one seed: the method's last word (random_ws ranks its
  candidates), the derived architecture: (arch, alphas, result.json's fields)."""
  alphas, method_result = parts.method.end_of_search(SearchEnd(alphas, seed,
                                                               validation_accuracy))
  alphas = jax.device_get(alphas)
  arch = parts.derive(parts.method.derivation_weights(alphas))
  result = {'genotype': parts.space.to_text(arch), 'val_acc': val_acc, 'epochs': epochs,
            'method': parts.method.name, **method_result, **parts.space.benchmark(arch)}
  if parts.budget is not None:
    result[f'derived_{parts.budget.kind}'] = parts.budget.cost(parts.space, arch)
  return arch, alphas, result

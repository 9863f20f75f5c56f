"""The trainers' config checks: every bad setting is one UserError that names the fix.

The space's and the method's own settings are checked where they are read
(`SearchSpace.from_config`, `Method.check`); these are the trainers' settings.
"""

from absl import logging
import jax
import jax.numpy as jnp

from darts_jax import data
from darts_jax.errors import UserError
from darts_jax.runtime import parallel
from darts_jax.runtime import preemption
from darts_jax.train import settings


def check_common(config, num_devices: int, process_count: int) -> None:
  """What a search and an evaluation config share: batches, epochs, SGD, seed, dtype."""
  t = config.train
  if t.epochs <= 0:
    raise UserError(f'config.train.epochs must be positive, got {t.epochs}')
  batch = settings.batch_size(t)
  if batch is not None:
    parallel.check_batch(batch, num_devices, process_count)
  if config.get('memory_limit_gb', 0.0) < 0:
    raise UserError(f'config.memory_limit_gb must be >= 0 (0: the device\'s memory), got '
                    f'{config.memory_limit_gb}')
  parallel.check_batch(config.eval_batch_size, num_devices, process_count,
                       'config.eval_batch_size')
  check_compute_dtype(config.model)
  preemption.checkpoint_settings(config)
  if t.get('nesterov', False) and t.momentum <= 0:
    raise UserError(f'config.train.nesterov needs config.train.momentum > 0, got '
                    f'{t.momentum}: set a momentum or config.train.nesterov=False')
  seed = config.seed
  if not isinstance(seed, int) or seed < 0:
    raise UserError(f'config.seed must be an integer >= 0, got {seed!r}')
  if t.crop_padding < 0:
    raise UserError(f'config.train.crop_padding must be >= 0, got {t.crop_padding}')


def check_compute_dtype(model) -> None:
  """Validates config.model.compute_dtype; warns where it is slower, not faster."""
  if settings.compute_dtype(model) == jnp.bfloat16 and jax.default_backend() == 'cpu':
    logging.warning('config.model.compute_dtype=bfloat16 on CPU: XLA:CPU ran the search step '
                    '3.7x slower in bfloat16 than in float32 (BUILD_NOTES.md); use float32 '
                    'on CPU, bfloat16 on GPUs and TPUs.')


def check_search(config, info, space, method, arch: settings.ArchOptimizer,
                 num_devices: int, process_count: int) -> None:
  """A search config, after its space and method were read from it."""
  for name in ('init_channels', 'layers'):
    if config.model[name] <= 0:
      raise UserError(f'config.model.{name} must be positive, got {config.model[name]}')
  check_common(config, num_devices, process_count)
  arch.check(method.deterministic_forward)
  if arch.order == 'second_fd' and settings.compute_dtype(config.model) != jnp.float32:
    raise UserError(f'config.arch.order=second_fd perturbs the weights by 0.01 / ||v|| in '
                    f'all, below {config.model.compute_dtype} resolution: use '
                    "config.model.compute_dtype='float32' or config.arch.order=second_exact")
  if not method.deterministic_forward and arch.order != 'first' and method.trains_alphas:
    # Second order differentiates through one sampled architecture; allowed but unusual.
    logging.warning('config.arch.order=%s with method %s: the second-order term uses the '
                    'same sampled edge weights in the virtual step', arch.order, method.name)
  warmup = config.train.get('warmup_epochs', 0)
  if not isinstance(warmup, int) or warmup < 0:
    raise UserError(f'config.train.warmup_epochs must be an integer >= 0, got {warmup!r}')
  subset = config.dataset.get('search_subset', 1.0)
  if not 0.0 < subset <= 1.0:
    raise UserError(f'config.dataset.search_subset must be in (0, 1], got {subset}')
  data.check_search_split(config.dataset.get('search_split', 'ordered'), subset)
  space.check(info)


def check_evaluation(config, num_devices: int, process_count: int) -> None:
  """An evaluation (training from scratch) config."""
  t = config.train
  check_common(config, num_devices, process_count)
  if t.lr_schedule not in settings.LR_SCHEDULES:
    raise UserError(f'unknown config.train.lr_schedule {t.lr_schedule!r}; use one of '
                    f'{settings.LR_SCHEDULES}')
  if not 0 <= t.label_smoothing < 1:
    raise UserError(f'config.train.label_smoothing must be in [0, 1), got '
                    f'{t.label_smoothing}')
  if t.cutout < 0:
    raise UserError(f'config.train.cutout must be >= 0, got {t.cutout}')
  check_color_jitter(t.color_jitter, config.dataset.name)


def check_color_jitter(strengths, dataset: str) -> None:
  if not strengths:
    return
  if dataset != 'imagenet2012':
    raise UserError(f'config.train.color_jitter is applied to ImageNet only (host-side '
                    f'preprocessing); set it to () for {dataset}')
  if (len(strengths) != 4 or min(strengths) < 0 or strengths[3] > 0.5):
    raise UserError(f'config.train.color_jitter must be (brightness, contrast, saturation, '
                    f'hue), each >= 0 and hue <= 0.5, got {tuple(strengths)}')

"""An evaluation run's trained network, read back from its workdir.

`load_run(workdir)` reads config.json, builds the network of the run's architecture
(`space.eval_network`), restores the newest checkpoint's weights and batch statistics
(`darts_jax.runtime.checkpoint.restore_latest`) and reads result.json when there is one.
`Run.inference` is the function every export wraps: uint8 NHWC images in, logits out, the
dataset's normalization inside.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
from typing import Any, Callable

import jax
import ml_collections
import numpy as np

from darts_jax import data
from darts_jax import spaces
from darts_jax.data import augmentation
from darts_jax.errors import UserError
from darts_jax.runtime import checkpoint
from darts_jax.train import augment

CONFIG = 'config.json'
RESULT = 'result.json'
CHECK_BATCH = 64  # Test images the export compares the exported logits with JAX's on.


@dataclasses.dataclass(frozen=True)
class Run:
  """A trained evaluation network and what its workdir says about it."""
  workdir: str
  config: ml_collections.ConfigDict
  space: Any  # The SearchSpace class of the architecture.
  arch: Any
  info: data.DatasetInfo
  model: Any  # flax module: apply(variables, images, train) -> (logits, aux).
  variables: dict  # {'params': ..., 'batch_stats': ...}
  step: int
  result: dict  # result.json ({} when the run has not written it).

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.info.image_shape)

  def inference(self) -> Callable[[jax.Array], jax.Array]:
    """uint8 [B, H, W, C] -> float32 logits [B, num_classes], the weights closed over."""
    model, variables, info = self.model, self.variables, self.info

    def infer(images):
      x = augmentation.normalize(images, info.mean, info.std)
      logits, _ = model.apply(variables, x, train=False)
      return logits

    return infer


def _read_json(path: str, what: str) -> Any:
  try:
    with open(path, encoding='utf-8') as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise UserError(f'cannot read {what} {path} ({e}); is it an evaluation run\'s '
                    'workdir?') from e


def _config(workdir: str) -> ml_collections.ConfigDict:
  if not os.path.exists(workdir):
    raise UserError(f'workdir {workdir} not found; pass the workdir of an evaluation run '
                    '(python -m darts_jax.main --config=experiments/augment_digits.py '
                    '--workdir=DIR)')
  if not os.path.isdir(workdir):
    raise UserError(f'workdir {workdir} is a file; pass the directory of an evaluation run')
  path = os.path.join(workdir, CONFIG)
  if not os.path.exists(path):
    hint = '; pass the workdir of an evaluation run'
    if os.path.exists(os.path.join(workdir, 'augment', CONFIG)):
      hint = f'; pass its evaluation run, --workdir={os.path.join(workdir, "augment")}'
    raise UserError(f'{workdir} has no {CONFIG}: not a darts_jax run{hint}')
  raw = _read_json(path, 'the run config')
  if not isinstance(raw, dict):
    raise UserError(f'{path} is not a run config (a JSON object); pass an evaluation run')
  mode = raw.get('mode')
  if mode != 'augment':
    hint = ''
    if mode == 'pipeline':
      hint = f'; pass its evaluation run, --workdir={os.path.join(workdir, "augment")}'
    elif mode == 'search':
      hint = ('; train its genotype from scratch first (python -m darts_jax.main '
              f'--config=experiments/augment_digits.py --config.genotype={workdir} '
              '--workdir=DIR), then export DIR')
    raise UserError(f'{workdir} holds a {mode!r} run, not an evaluation (augment) run: only '
                    f'a network trained from scratch exports{hint}')
  return ml_collections.ConfigDict(raw)


def load_run(workdir: str) -> Run:
  """The run in `workdir`, its newest checkpoint restored; UserError naming the fix."""
  config = _config(workdir)
  try:
    space, arch = spaces.load_arch(config.genotype,
                                   config.get('search_space', {}).get('name', ''))
    info = data.get_info(config.dataset.name)
    model = space.eval_network(arch, config.model, info)
  except (AttributeError, KeyError) as e:
    raise UserError(f'{os.path.join(workdir, CONFIG)} lacks a field ({e}); is it an '
                    'evaluation run of this darts_jax version?') from e
  if not checkpoint.saved_steps(workdir):
    raise UserError(f'{workdir} has no checkpoint in {checkpoint.checkpoint_dir(workdir)}; '
                    'train the run first (python -m darts_jax.main --config=... '
                    f'--workdir={workdir}), then export it')
  template = augment.init_state(model, info.image_shape, config.seed)
  with contextlib.redirect_stdout(io.StringIO()):  # Its 'resuming from ...' line.
    state, meta = checkpoint.restore_latest(workdir, template)
  if meta is None:
    raise UserError(f'{workdir} has no readable checkpoint; train the run first')
  result_path = os.path.join(workdir, RESULT)
  result = _read_json(result_path, 'the run result') if os.path.exists(result_path) else {}
  variables = {'params': state['params'], 'batch_stats': state['batch_stats']}
  return Run(workdir=os.path.abspath(workdir), config=config, space=space, arch=arch,
             info=info, model=model, variables=variables, step=int(meta['step']),
             result=result if isinstance(result, dict) else {})


def check_batch(run: Run, size: int = CHECK_BATCH) -> tuple[np.ndarray, str]:
  """uint8 images to compare exported logits on, and what they are: the first `size`
  images of the dataset's test split, or seeded random pixels when it is not here."""
  name = run.info.name
  try:
    source = data.load_source(name, 'test', run.config.dataset.get('data_dir', ''),
                              download=False)
    images, _ = source.get(np.arange(min(size, len(source))))
    return np.asarray(images, np.uint8), f'{len(images)} {name} test images'
  except (UserError, OSError):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (size,) + run.image_shape, dtype=np.uint8)
    return images, f'{size} random uint8 images ({name} test split not available)'


def reference_logits(run: Run, images: np.ndarray) -> np.ndarray:
  """The network's logits on `images` as darts_jax computes them (jit, default lowering)."""
  return np.asarray(jax.jit(run.inference())(images))


def max_abs_diff(a, b) -> float:
  return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


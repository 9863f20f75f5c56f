"""What a training loop checks between steps: numerics, periodic checkpoints, SIGTERM.

Shared by the search (`search.py`) and the evaluation training (`augment.py`).
SIGTERM (what schedulers send before preempting) only sets a flag; the loop
sees it after the current step, writes a checkpoint and returns, so the
process exits 0 within a step's time and a rerun of the same command resumes.
With several processes a notice may reach only some of them, and a process that
stopped alone would leave the others waiting in the step's collectives: there
JAX's preemption service (started by `jax.distributed.initialize`) hears
SIGTERM instead, and every process stops at the same step, the first that all
of them reach after the notice (`multihost_utils.reached_preemption_sync_point`).
A checkpoint is only written after checking that every step since the last
check had a finite loss and gradient: a diverged state never replaces the
last good checkpoint. A mid-epoch checkpoint also keeps the epoch's per-step
metrics so far (`EpochMetrics`): the resumed run's epoch averages are those of
an uninterrupted run.
"""

import contextlib
import signal
import threading

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np

from darts_jax.runtime import checkpoint
from darts_jax.errors import UserError


class StopRequest:
  """Set by the SIGTERM handler or, with several processes, at the agreed step."""

  def __init__(self, across_processes: bool = False):
    self.signal_name = None
    self.across_processes = across_processes

  def __bool__(self) -> bool:
    return self.signal_name is not None

  def update(self, step: int) -> None:
    """Called after every step by every process (the preemption service needs each step)."""
    if self.across_processes and not self and multihost_utils.reached_preemption_sync_point(
        step):
      self.signal_name = 'SIGTERM'
      logging.warning('a process of this run received SIGTERM: all processes checkpoint '
                      'step %d, then stop', step)


@contextlib.contextmanager
def stop_on_sigterm():
  """Yields a StopRequest that SIGTERM sets (outside the main thread: never set).

  With several processes no Python handler is installed: it would replace the one
  of JAX's preemption service, which then agrees on the step to stop at.
  """
  if jax.process_count() > 1:
    yield StopRequest(across_processes=True)
    return
  request = StopRequest()
  if threading.current_thread() is not threading.main_thread():
    yield request
    return

  def handler(signum, frame):
    del frame
    request.signal_name = signal.Signals(signum).name
    logging.warning('%s received: checkpointing after this step, then stopping',
                    request.signal_name)

  previous = signal.signal(signal.SIGTERM, handler)
  try:
    yield request
  finally:
    signal.signal(signal.SIGTERM, previous)


class EpochMetrics:
  """The per-step metric dicts of the current epoch (on the device until read).

  `resume(meta, step_in_epoch)` takes back the steps a mid-epoch checkpoint
  recorded, so `mean` covers the whole epoch after a resume.
  """

  def __init__(self):
    self.steps = []
    self.resumed = 0  # How many of `steps` came from the checkpoint.

  def resume(self, meta, step_in_epoch: int) -> None:
    recorded = (meta or {}).get('epoch_step_metrics', [])
    if step_in_epoch and len(recorded) == step_in_epoch:
      self.steps, self.resumed = list(recorded), step_in_epoch
    elif step_in_epoch:
      logging.warning('the checkpoint holds no metrics of the %d steps run in its epoch: '
                      "this epoch's averages cover only the steps after the resume",
                      step_in_epoch)

  def append(self, step_metrics) -> None:
    self.steps.append(step_metrics)

  def host(self) -> list:
    """Every step's metrics as Python floats, or lists of them per seed of a population
    ('finite' left out)."""
    values = jax.device_get(self.steps)
    return [{k: np.asarray(v, np.float64).tolist() for k, v in m.items() if k != 'finite'}
            for m in values]

  @staticmethod
  def mean(host: list, key: str):
    """The mean of `key` over `host()`'s steps, summed in float64 (per seed: an array)."""
    mean = np.mean(np.asarray([m[key] for m in host], dtype=np.float64), axis=0)
    return float(mean) if mean.ndim == 0 else mean


class StepGuard:
  """Checks finiteness, saves every `every_steps` steps, and stops on request.

  The loop calls `add(step, finite)` after each step (a device flag: no sync),
  `after_step(state, step, epoch_metrics)` to learn whether to stop, and at an epoch end
  `check_finite()` then `save(state, step)`.
  """

  def __init__(self, workdir, steps_per_epoch: int, every_steps: int, keep: int,
               stop_request: StopRequest, hint: str, data_split: str = '',
               seeds: tuple = ()):
    self.workdir = workdir
    self.seeds = seeds  # A population's seeds: the finite flags are one per seed.
    self.data_split = data_split  # Saved with each checkpoint (checkpoint.save).
    self.steps_per_epoch = steps_per_epoch
    self.every_steps = every_steps
    self.keep = keep
    self.stop_request = stop_request
    self.hint = hint
    self.last_saved_step = None
    self._pending = []  # (step, finite flag on the device) since the last check.

  def add(self, step: int, finite) -> None:
    self._pending.append((step, finite))

  def check_finite(self) -> None:
    """Raises UserError naming the first step (and seeds) with a non-finite loss or
    gradient."""
    flags = jax.device_get([f for _, f in self._pending])
    steps = [s for s, _ in self._pending]
    self._pending = []
    for step, ok in zip(steps, flags):
      ok = np.asarray(ok)
      if not ok.all():
        epoch = (step - 1) // self.steps_per_epoch + 1
        kept = (f'the last good checkpoint (step {self.last_saved_step}) is kept'
                if self.last_saved_step is not None else 'no checkpoint was written')
        seeds = ''
        if ok.ndim:
          seeds = ' of seed ' + ', '.join(str(self.seeds[i]) for i in np.flatnonzero(~ok))
        raise UserError(f'non-finite loss or gradient at step {step} (epoch {epoch}){seeds}; '
                        f'stopped without saving, {kept}; {self.hint}')

  def save(self, state, step: int, epoch_metrics: EpochMetrics | None = None,
           finished: bool = False) -> None:
    """Saves after checking finiteness; mid-epoch, with the epoch's metrics so far;
    `finished`: the run stops here for good (checkpoint.save)."""
    self.check_finite()
    mid_epoch = epoch_metrics is not None and step % self.steps_per_epoch
    checkpoint.save(self.workdir, state, step, self.steps_per_epoch, self.keep,
                    epoch_metrics.host() if mid_epoch else (), self.data_split, finished)
    self.last_saved_step = step

  def after_step(self, state, step: int, epoch_metrics: EpochMetrics) -> bool:
    """Saves when due (not at an epoch end: the loop saves there); True: stop now."""
    self.stop_request.update(step)
    if step % self.steps_per_epoch == 0:
      return False
    if self.stop_request:
      self.save(state, step, epoch_metrics)
      return True
    if self.every_steps > 0 and step % self.every_steps == 0:
      self.save(state, step, epoch_metrics)
    return False

  def preempted_result(self, step: int) -> dict:
    message = (f'stopped by {self.stop_request.signal_name} after step {step}; '
               'checkpoint written, rerun the same command to resume')
    logging.warning('%s', message)
    return {'preempted': True, 'step': step, 'message': message}


def checkpoint_settings(config) -> tuple:
  """(every_steps, keep) from config.checkpoint_every_steps / checkpoints_to_keep."""
  every = config.get('checkpoint_every_steps', 0)
  keep = config.get('checkpoints_to_keep', checkpoint.KEEP)
  if not isinstance(every, int) or every < 0:
    raise UserError(f'config.checkpoint_every_steps must be an integer >= 0 (0: epoch ends '
                    f'only), got {every!r}')
  if not isinstance(keep, int) or keep < 1:
    raise UserError(f'config.checkpoints_to_keep must be an integer >= 1, got {keep!r}')
  return every, keep

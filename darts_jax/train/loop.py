"""The one training loop of the search and of the evaluation (training from scratch).

A trainer hands `run_epochs` a `Loop`: its jitted step, the data parts each step reads,
the epoch counts and what to do at an epoch's end. The loop owns what both trainers
share: the batches of every epoch (a function of seed and epoch, so a resumed run skips
to its position), the NaN guard, periodic and epoch-end checkpoints, SIGTERM,
progress, metrics.jsonl and TensorBoard, and the timings of every epoch.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable, Optional, Sequence

from absl import logging
import jax
import numpy as np

from darts_jax import data
from darts_jax.data import loader as data_loader
from darts_jax.runtime import checkpoint
from darts_jax.runtime import memory
from darts_jax.runtime import metrics
from darts_jax.runtime import parallel
from darts_jax.runtime import preemption

# end_of_epoch(epoch index, state, the epoch's per-step host metrics, writer)
#   -> (metrics line without the timings, stop after this epoch).
EpochEndFn = Callable[[int, Any, list, metrics.MetricWriter], tuple[dict, bool]]


@dataclasses.dataclass
class Loop:
  """What a trainer gives the loop."""
  workdir: str
  step: Callable  # Jitted: (state, *batches) -> (state, step metrics with a 'finite' flag).
  # (source, indices, loader seed) per batch the step takes; a tuple of loader seeds: one
  # loader per seed of a population, their batches stacked on a leading seed axis.
  parts: Sequence[tuple[Any, np.ndarray, Any]]
  batch_size: int
  steps_per_epoch: int
  epochs: int  # The run's length.
  end_epoch: int  # This call stops after this epoch (<= epochs).
  end_of_epoch: EpochEndFn
  hint: str  # How to fix a non-finite loss, for the NaN guard's message.
  checkpoint_every: int = 0
  checkpoints_to_keep: int = checkpoint.KEEP
  data_split: str = ''  # A fingerprint saved with every checkpoint.
  shard: Callable = parallel.shard_batch  # (host batch, mesh) -> global array.
  seeds: tuple = ()  # A population's seeds (names them in the NaN guard's message).
  jsonl_files: tuple[str, ...] = ('metrics.jsonl',)  # Per-epoch records, cut on resume.


@dataclasses.dataclass
class LoopResult:
  state: Any
  preempted: Optional[dict] = None  # The result to return when SIGTERM stopped the run.


def example_batches(parts, batch_size: int, shard: Callable, mesh) -> list:
  """One step's batches at `batch_size`, as shapes, dtypes and shardings: `shard` places
  one row per device and its batch axis is scaled (a population's is axis 1)."""
  data_devices = mesh.shape[parallel.DATA_AXIS]
  local = max(data_devices // jax.process_count(), 1)
  out = []
  for source, indices, seeds in parts:
    images, labels = source.get(np.asarray(indices[:1]))
    stack = len(seeds) if isinstance(seeds, (tuple, list)) else 0
    host = {'image': images, 'label': labels}
    host = {k: np.zeros(((stack,) if stack else ()) + (local,) + v.shape[1:], v.dtype)
            for k, v in host.items()}
    axis = 1 if stack else 0

    def scaled(x, axis=axis):
      shape = list(x.shape)
      shape[axis] = batch_size
      return jax.ShapeDtypeStruct(tuple(shape), x.dtype, sharding=x.sharding)

    out.append(jax.tree.map(scaled, shard(host, mesh)))
  return out


def compile_step(make_step: Callable[[int], Callable], state, parts, shard: Callable, mesh,
                 batch_size, cap: int, limit_gb: float):
  """(step, batch size): `make_step(batch)`'s step compiled for `state` and the batches of
  `parts`, at `batch_size` or, for None ('auto'), the largest batch that fits the device's
  memory (runtime.memory: a batch that does not fit is a UserError naming the largest that
  does). A given batch is compiled and checked at the first call, so a resumed run that
  has finished compiles nothing."""
  multiple = np.lcm(mesh.shape[parallel.DATA_AXIS], jax.process_count())
  state_shapes = parallel.abstract(state)

  def compile_at(batch: int):
    start = time.time()
    compiled = parallel.compile_ahead(
        make_step(batch), (state_shapes, *example_batches(parts, batch, shard, mesh)),
        donate_argnums=(0,))
    logging.info('compiled the step for batch %d in %.1f s: %s per device', batch,
                 time.time() - start, memory.size(memory.needed_bytes(compiled)))
    return compiled

  def fit(batch):
    return memory.fit_batch(compile_at, batch, memory.device_limit(limit_gb), int(multiple),
                            cap)

  if batch_size is None:
    return fit(None)
  compiled = []

  def step(*args):
    if not compiled:
      compiled.append(fit(batch_size)[0])
    return compiled[0](*args)

  return step, batch_size


def step_of(state) -> int:
  """The state's step counter (a population's seeds share it)."""
  return int(np.asarray(jax.device_get(state['step'])).reshape(-1)[0])


def start_position(state, meta, steps_per_epoch: int, workdir: str) -> tuple[int, int, int]:
  """(step, epoch, step in that epoch) the restored `state` resumes at."""
  checkpoint.check_resumable(meta, steps_per_epoch, workdir)
  step = step_of(state)
  epoch, offset = divmod(step, steps_per_epoch)
  if meta:
    logging.info('resumed from the checkpoint of step %d (epoch %d, step %d of it) in %s',
                 step, epoch, offset, workdir)
  return step, epoch, offset


def run_epochs(loop: Loop, state, meta, mesh) -> LoopResult:
  """Trains from `state` (restored with `meta`, or fresh with None) to `loop.end_epoch`."""
  is_main = jax.process_index() == 0
  spe = loop.steps_per_epoch
  step, start_epoch, start_offset = start_position(state, meta, spe, loop.workdir)
  if is_main:  # Lines of epochs after the checkpoint are written again below.
    for name in loop.jsonl_files:
      checkpoint.truncate_jsonl(os.path.join(loop.workdir, name), start_epoch)
  writer = metrics.MetricWriter(loop.workdir, enabled=is_main, first_step=step + 1)
  try:
    with preemption.stop_on_sigterm() as stop_request:
      guard = preemption.StepGuard(loop.workdir, spe, loop.checkpoint_every,
                                   loop.checkpoints_to_keep, stop_request, hint=loop.hint,
                                   data_split=loop.data_split, seeds=loop.seeds)
      guard.last_saved_step = step if meta else None
      # A run a method stopped before its last epoch stays stopped when rerun.
      end_epoch = start_epoch if (meta or {}).get('finished') else loop.end_epoch
      for epoch in range(start_epoch, end_epoch):
        epoch_start = time.time()
        loaders = [_epoch_loader(source, idx, loop.batch_size, seeds, epoch, spe,
                                 step - epoch * spe) for source, idx, seeds in loop.parts]
        progress = metrics.Progress(spe, desc=f'epoch {epoch + 1}/{loop.epochs}',
                                    enabled=is_main)
        progress.n = step - epoch * spe
        epoch_metrics = preemption.EpochMetrics()
        if epoch == start_epoch:
          epoch_metrics.resume(meta, start_offset)
        loop_start = time.time()
        first_step_seconds = rest_start = None
        for batches in zip(*loaders):
          state, m = loop.step(state, *[loop.shard(b, mesh) for b in batches])
          step += 1
          epoch_metrics.append(m)
          guard.add(step, m['finite'])
          if first_step_seconds is None:
            jax.block_until_ready(m)
            first_step_seconds = time.time() - loop_start
            rest_start = time.time()
          progress.step_dispatched(epoch_metrics.steps)
          if guard.after_step(state, step, epoch_metrics):
            progress.close()
            return LoopResult(state, guard.preempted_result(step))
        jax.block_until_ready(state)
        rest_seconds = time.time() - rest_start if rest_start is not None else 0.0
        steps_run = len(epoch_metrics.steps) - epoch_metrics.resumed
        progress.close()
        guard.check_finite()
        line, stop = loop.end_of_epoch(epoch, state, epoch_metrics.host(), writer)
        epoch_seconds = time.time() - epoch_start
        line.update({
            'batch_size': loop.batch_size,  # config.train.batch_size='auto' picks it.
            'first_step_seconds': first_step_seconds,
            'step_seconds': (rest_seconds / (steps_run - 1) if steps_run > 1
                             else first_step_seconds),
            'epoch_seconds': epoch_seconds,
            'data_wait_fraction': sum(l.wait_seconds for l in loaders) / max(epoch_seconds,
                                                                             1e-9),
        })
        writer.write(step, {'epoch': epoch + 1, **line})
        guard.save(state, step, finished=bool(stop))
        if stop:
          logging.info('stopping after epoch %d, as the method decided', epoch + 1)
          break
        if stop_request and epoch + 1 < loop.end_epoch:
          return LoopResult(state, guard.preempted_result(step))
  finally:
    writer.close()
  return LoopResult(state)


def _epoch_loader(source, indices, batch_size: int, seeds, epoch: int, num_steps: int,
                  start_step: int):
  """One part's loader of an epoch: for one loader seed, or stacked for several."""
  def one(seed):
    return data.epoch_loader(source, indices, batch_size, seed, epoch, num_steps, start_step,
                             jax.process_index(), jax.process_count())
  if isinstance(seeds, (tuple, list)):
    return data_loader.StackedLoader([one(s) for s in seeds])
  return one(seeds)


def evaluate(eval_step, state, source, indices, batch: int, mesh):
  """The means over `indices` (padded to whole batches, masked) of `eval_step`'s sums.

  A last partial batch is padded with its own examples repeated in turn, so that BN
  with batch statistics sees those examples only (exactly their statistics when their
  number divides the batch).

  `eval_step` returns per-batch sums, the example count last (e.g. loss, correct,
  count: then this returns (mean loss, accuracy)). Each process reads only its rows
  of every global batch of `batch` (config.eval_batch_size). A population's eval step
  returns its sums per seed: then the means are arrays over the seeds.
  """
  parallel.check_batch(batch, mesh.shape[parallel.DATA_AXIS], jax.process_count(),
                       'config.eval_batch_size')
  rows = parallel.process_rows(batch, jax.process_index(), jax.process_count())
  totals = None
  for start in range(0, len(indices), batch):
    idx = indices[start:start + batch]
    mask = np.zeros(batch, np.float32)
    mask[:len(idx)] = 1.0
    idx = np.resize(idx, batch)
    idx, mask = idx[rows], mask[rows]
    images, labels = source.get(idx)
    sums = eval_step(state, parallel.shard_batch({'image': images, 'label': labels}, mesh),
                     parallel.shard_batch(mask, mesh))
    sums = [np.asarray(x, np.float64) for x in sums]  # Per seed for a population.
    totals = sums if totals is None else [t + x for t, x in zip(totals, sums)]
  *totals, count = totals
  return tuple(float(t / count) if t.ndim == 0 else t / count for t in totals)

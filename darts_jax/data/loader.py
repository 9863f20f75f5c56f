"""Per-epoch batch order and the host prefetch thread."""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from typing import Any, Iterator

import numpy as np

from darts_jax.data.datasets import Source
from darts_jax.errors import UserError


def for_epoch(source: Source, epoch: int) -> Source:
  """`source` for `epoch` (only sources with random host preprocessing vary)."""
  with_epoch = getattr(source, 'with_epoch', None)
  return with_epoch(epoch) if with_epoch is not None else source


def epoch_batches(indices: np.ndarray, batch_size: int, seed: int, epoch: int,
                  process_index: int = 0, process_count: int = 1,
                  num_steps: int | None = None) -> np.ndarray:
  """This process's index batches of one epoch.

  The epoch is a permutation of `indices` seeded by (seed, epoch), cut into
  global batches of `batch_size` (the remainder dropped). Each process takes
  its own contiguous slice of every global batch. With `num_steps` the first
  `num_steps` batches; where one permutation has fewer, further ones, seeded by
  (seed, epoch, round), follow (a smaller search-val split is cycled).

  Returns:
    int64 [steps, batch_size // process_count].
  """
  indices = np.asarray(indices, np.int64).reshape(-1)
  if batch_size <= 0 or batch_size % process_count:
    raise UserError(f'batch_size {batch_size} must be a positive multiple of '
                    f'the process count {process_count}')
  if not 0 <= process_index < process_count:
    raise UserError(f'process_index {process_index} is not in '
                    f'[0, {process_count})')
  steps = len(indices) // batch_size
  if steps == 0:
    raise UserError(f'batch_size {batch_size} is larger than the '
                    f'{len(indices)} examples to batch: lower batch_size')
  rounds = 1 if num_steps is None else max(1, -(-num_steps // steps))
  batches = np.concatenate([
      np.random.default_rng([seed, epoch] + ([r] if r else [])).permutation(indices)[
          :steps * batch_size].reshape(steps, batch_size) for r in range(rounds)])
  batches = batches[:num_steps]
  local = batch_size // process_count
  return batches[:, process_index * local:(process_index + 1) * local]


# ----------------------------------------------------------------------------
# Prefetching.


def epoch_loader(source: Source, indices: np.ndarray, batch_size: int, seed: int, epoch: int,
                 num_steps: int, start_step: int = 0, process_index: int = 0,
                 process_count: int = 1) -> BatchLoader:
  """One epoch's loader: that epoch's batch order and, for a source with random host
  preprocessing (ImageNet's crops and flips), that epoch's draws."""
  batches = epoch_batches(indices, batch_size, seed, epoch, process_index, process_count,
                          num_steps)
  return BatchLoader(for_epoch(source, epoch), batches, start_step=start_step)


@dataclasses.dataclass
class _Failure:
  error: BaseException


class BatchLoader:
  """Iterates host batches of `source`, prefetched by a background thread.

  Each iteration starts at `start_step` (for resume) and yields
  {'image': uint8 [b, H, W, C], 'label': int32 [b]} for the remaining rows of
  `index_batches`. `wait_seconds` accumulates the time the consumer waited for
  a batch (input-bound if it grows).
  """

  def __init__(self, source: Source, index_batches: np.ndarray,
               start_step: int = 0, prefetch: int = 3):
    self.source = source
    self.index_batches = np.asarray(index_batches)
    if self.index_batches.ndim != 2:
      raise ValueError('index_batches must be [steps, batch]')
    if not 0 <= start_step <= len(self.index_batches):
      raise UserError(f'start_step {start_step} is outside the '
                      f'{len(self.index_batches)} steps of the epoch')
    self.start_step = start_step
    self.prefetch = prefetch
    self.wait_seconds = 0.0

  def __len__(self) -> int:
    return len(self.index_batches) - self.start_step

  def _produce(self, out: queue.Queue, stop: threading.Event) -> None:
    """Thread body: fills `out` until done or `stop` is set."""

    def put(item: Any) -> bool:
      while not stop.is_set():
        try:
          out.put(item, timeout=0.05)
          return True
        except queue.Full:
          pass
      return False

    try:
      for step in range(self.start_step, len(self.index_batches)):
        images, labels = self.source.get(self.index_batches[step])
        if not put({'image': images, 'label': labels}):
          return
    except BaseException as e:  # pylint: disable=broad-except
      put(_Failure(e))

  def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
    out: queue.Queue = queue.Queue(maxsize=self.prefetch)
    stop = threading.Event()
    thread = threading.Thread(target=self._produce, args=(out, stop),
                              daemon=True, name='BatchLoader')
    thread.start()
    try:
      for _ in range(len(self)):
        start = time.perf_counter()
        item = out.get()
        self.wait_seconds += time.perf_counter() - start
        if isinstance(item, _Failure):
          raise item.error
        yield item
    finally:
      stop.set()
      thread.join(timeout=5)


class StackedLoader:
  """Several loaders of one epoch (a population's seeds) as one: their batches stacked on
  a leading axis."""

  def __init__(self, loaders):
    self.loaders = list(loaders)

  def __len__(self) -> int:
    return min(len(l) for l in self.loaders)

  @property
  def wait_seconds(self) -> float:
    return sum(l.wait_seconds for l in self.loaders)

  def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
    for batches in zip(*self.loaders):
      yield {k: np.stack([b[k] for b in batches]) for k in batches[0]}

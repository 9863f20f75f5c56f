"""Memory before the run: the bytes XLA's compiled step needs, against the device's memory.

`fit_batch` compiles a step at the requested batch (or, for 'auto', at the largest the
data allows), reads the executable's memory analysis, and when it needs more than the
limit, searches the batches that are multiples of the data-parallel device count for
the largest whose compiled step fits: every size it names was compiled, none is a guess.
The search compiles the smallest batch, then steps along the line through the compiled
sizes nearest the boundary (a step's bytes grow about linearly with the batch: 2 more
compiles when they do), bisecting after two line steps that did not halve the interval.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

import jax

from darts_jax.errors import UserError

GIB = 1024 ** 3


@dataclasses.dataclass(frozen=True)
class Limit:
  bytes: int
  source: str  # Where the number came from, for the error message.


def device_limit(limit_gb: float, device=None) -> Limit:
  """config.memory_limit_gb when > 0; else the accelerator's allocator limit, or on a CPU
  the machine's physical memory."""
  if limit_gb > 0:
    return Limit(int(limit_gb * GIB), 'config.memory_limit_gb')
  device = device or jax.local_devices()[0]
  stats = device.memory_stats() if hasattr(device, 'memory_stats') else None
  if stats and stats.get('bytes_limit'):
    return Limit(int(stats['bytes_limit']), f'the memory of {device.device_kind}; set '
                 'config.memory_limit_gb to change it')
  physical = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
  return Limit(int(physical), 'the physical memory of this host; set config.memory_limit_gb '
               'to change it')


def size(num_bytes: int) -> str:
  """Bytes for a message: '18.4 MiB', '3.07 GiB'."""
  if num_bytes >= GIB:
    return f'{num_bytes / GIB:.2f} GiB'
  return f'{num_bytes / 1024 ** 2:.1f} MiB'


def needed_bytes(compiled) -> int:
  """Peak bytes of one run of a compiled executable, per device: its arguments, outputs
  that do not reuse (alias) a donated argument, its temporaries and code."""
  stats = compiled.memory_analysis()
  if stats is None:  # A backend without the analysis: nothing to check.
    return 0
  return int(stats.argument_size_in_bytes + stats.output_size_in_bytes
             - stats.alias_size_in_bytes + stats.temp_size_in_bytes
             + stats.generated_code_size_in_bytes)


def largest_fitting(bytes_at: Callable[[int], int], limit: int, multiple: int, cap: int,
                    known: dict[int, int]) -> int:
  """The largest multiple of `multiple` up to `cap` with bytes_at(b) <= limit (0: none).

  `known` maps batches already compiled to their bytes; it gains every batch compiled
  here. Bytes are taken to grow with the batch.
  """
  cap -= cap % multiple

  def need(b: int) -> int:
    if b not in known:
      known[b] = bytes_at(b)
    return known[b]

  lo, hi = 0, cap + multiple  # lo fits (0 trivially), hi does not (beyond the cap).
  for b, v in known.items():
    if v <= limit:
      lo = max(lo, b)
    else:
      hi = min(hi, b)
  if lo == 0 and hi > multiple:  # The smallest batch: whether any fits, and the line's foot.
    if need(multiple) > limit:
      return 0
    lo = multiple
  slow_line_steps = 0  # Line steps in a row that did not halve the interval.
  while hi - lo > multiple:
    width = hi - lo
    guess = (_line_guess(known, lo, hi, limit) if slow_line_steps < 2 else (lo + hi) // 2)
    b = min(max(guess - guess % multiple, lo + multiple), hi - multiple)
    if need(b) <= limit:
      lo = b
    else:
      hi = b
    halved = 2 * (hi - lo) <= width
    slow_line_steps = 0 if (halved or slow_line_steps >= 2) else slow_line_steps + 1
  return lo


def _line_guess(known: dict[int, int], lo: int, hi: int, limit: int) -> int:
  """Where the line through the compiled sizes nearest the boundary reaches `limit` (with
  only `lo` compiled, `hi` is beyond the cap: then the cap is tried)."""
  if hi in known and lo in known and known[hi] != known[lo]:
    slope = (known[hi] - known[lo]) / (hi - lo)
    return int(lo + (limit - known[lo]) / slope)
  if hi in known:  # Bytes proportional to the batch.
    return int(hi * limit / max(known[hi], 1))
  return hi - 1


def fit_batch(compile_at: Callable[[int], object], batch: int | None, limit: Limit,
              multiple: int, cap: int, name: str = 'config.train.batch_size'):
  """(compiled step, its batch): the requested `batch`, or the largest that fits when
  `batch` is None ('auto'). A batch that does not fit raises UserError naming the largest
  that does."""
  compiled = {}
  known: dict[int, int] = {}

  def bytes_at(b: int) -> int:
    compiled[b] = compile_at(b)
    return needed_bytes(compiled[b])

  requested = batch if batch is not None else max(cap - cap % multiple, multiple)
  known[requested] = bytes_at(requested)
  if known[requested] <= limit.bytes:
    return compiled[requested], requested
  best = largest_fitting(bytes_at, limit.bytes, multiple, min(requested, cap), known)
  if best == 0:
    raise UserError(
        f'even {name}={multiple} needs {size(known[multiple])} per device, over the '
        f'{size(limit.bytes)} limit ({limit.source}): use a smaller model '
        '(config.model.layers, init_channels) or more devices')
  if batch is not None:
    raise UserError(
        f'{name}={batch} needs {size(known[batch])} per device, over the '
        f'{size(limit.bytes)} limit ({limit.source}); the largest batch that fits '
        f'is {best} ({size(known[best])}, compiled): set --{name}={best} or =auto')
  return compiled[best], best

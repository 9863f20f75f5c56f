"""Metric logging (JSON lines + TensorBoard) and a light progress reporter.

`MetricWriter` appends one JSON object per `write` call to
`<workdir>/metrics.jsonl` and mirrors numeric values as TensorBoard scalars in
`<workdir>/tensorboard` (via `tensorboardX`, if installed). `Progress` shows a
per-epoch progress bar on a terminal and sparse `logging.info` lines otherwise.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import sys
import time
from typing import Any, Mapping, Sequence, TextIO

from absl import logging
import jax
import numpy as np

TENSORBOARD_SUBDIR = 'tensorboard'

_warned_no_tensorboard = False


def _num_steps_for_edges(n: int) -> int | None:
  """Cell steps whose search cell has `n` edges (14 -> 4), or None."""
  steps, total = 0, 0
  while total < n:
    total += steps + 2
    steps += 1
  return steps if total == n else None


def edge_names(num_edges: int) -> list[str]:
  """`edge_<dst_state>_<src_state>` per alpha row (`edge_2_0`, `edge_2_1`, ...).

  Falls back to `edge_<row>` if `num_edges` is not a DARTS cell edge count.
  """
  steps = _num_steps_for_edges(num_edges)
  if steps is None:
    return [f'edge_{r}' for r in range(num_edges)]
  return [f'edge_{i + 2}_{j}' for i in range(steps) for j in range(i + 2)]


def to_python(value: Any) -> Any:
  """Converts numpy/jax scalars (and 0-d or 1-element arrays) to Python.

  Strings, bools and None pass through. Non-finite floats become None in JSON
  (see `_json_safe`); this function keeps them as floats.
  """
  if value is None or isinstance(value, (str, bool)):
    return value
  if isinstance(value, numbers.Integral):
    return int(value)
  if isinstance(value, numbers.Real):
    return float(value)
  if isinstance(value, np.generic):
    return value.item()
  # jax.Array, np.ndarray and anything array-like.
  try:
    arr = np.asarray(value)
  except Exception as e:  # pylint: disable=broad-except
    raise TypeError(f'cannot log value of type {type(value).__name__}') from e
  if arr.size != 1:
    raise ValueError(
        f'metric values must be scalars, got an array of shape {arr.shape}')
  return arr.reshape(()).item()


def _json_safe(value: Any) -> Any:
  if isinstance(value, float) and not math.isfinite(value):
    return None  # Strict JSON has no NaN/inf.
  return value


class MetricWriter:
  """Writes scalar metrics as JSON lines and (optionally) TensorBoard events.

  Only the writing process should pass `enabled=True` (e.g.
  `enabled=jax.process_index() == 0`); a disabled writer writes nothing.
  `first_step`: the first step this writer can write; TensorBoard hides the
  events of an interrupted run from that step on (its `purge_step`), as the
  trainers truncate metrics.jsonl to the checkpoint's epoch.
  """

  def __init__(self,
               workdir: str | os.PathLike[str],
               filename: str = 'metrics.jsonl',
               enabled: bool = True,
               tensorboard: bool = True,
               first_step: int | None = None):
    self.workdir = os.fspath(workdir)
    self.path = os.path.join(self.workdir, filename)
    self.enabled = enabled
    self._file: TextIO | None = None
    self._tb: Any = None
    self._closed = False
    if not enabled:
      return
    os.makedirs(self.workdir, exist_ok=True)
    if tensorboard:
      self._tb = _make_tensorboard_writer(
          os.path.join(self.workdir, TENSORBOARD_SUBDIR), first_step)

  @property
  def tensorboard_enabled(self) -> bool:
    return self._tb is not None

  def write(self, step: int, scalars: Mapping[str, Any]) -> None:
    """Appends `{"step": step, **scalars}` as one JSON line; mirrors to TB."""
    if not self.enabled:
      return
    if self._closed:
      raise RuntimeError('MetricWriter.write called after close()')
    values = {str(k): to_python(v) for k, v in scalars.items()}
    record: dict[str, Any] = {}
    if 'epoch' in values:
      record['epoch'] = values.pop('epoch')
    values.pop('step', None)
    record['step'] = int(to_python(step))
    record.update(values)
    if self._file is None:
      self._file = open(self.path, 'a', encoding='utf-8')
    line = json.dumps({k: _json_safe(v) for k, v in record.items()},
                      allow_nan=False)
    self._file.write(line + '\n')
    self._file.flush()
    if self._tb is not None:
      for name, value in record.items():
        if name == 'step' or isinstance(value, (str, bool)) or value is None:
          continue
        self._tb.add_scalar(name, value, global_step=record['step'])
      self._tb.flush()

  def write_alphas(self, step: int, name: str, weights: Any,
                   primitives: Sequence[str],
                   edges: Sequence[tuple[int, int]] | None = None) -> None:
    """Writes `weights[edge, op]` as TB scalars `alphas/<name>/edge_<dst>_<src>/<op>`.

    Args:
      step: global step.
      name: cell name, e.g. 'normal' or 'reduce'.
      weights: `[num_edges, num_ops]` (usually softmaxed) architecture weights.
      primitives: op name per column.
      edges: (destination state, source state) per row; None: `edge_names`' guess.
    """
    if not self.enabled or self._tb is None:
      return
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != len(primitives):
      raise ValueError(
          f'alphas {name} must have shape [num_edges, {len(primitives)}], '
          f'got {w.shape}')
    step = int(to_python(step))
    names = (edge_names(w.shape[0]) if edges is None
             else [f'edge_{dst}_{src}' for dst, src in edges])
    for edge, row in zip(names, w):
      for op, value in zip(primitives, row):
        self._tb.add_scalar(f'alphas/{name}/{edge}/{op}', float(value),
                            global_step=step)
    self._tb.flush()

  def flush(self) -> None:
    if self._file is not None:
      self._file.flush()
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    """Flushes and closes the files; further writes raise."""
    if self._closed:
      return
    self._closed = True
    if self._file is not None:
      self._file.close()
      self._file = None
    if self._tb is not None:
      self._tb.close()
      self._tb = None

  def __enter__(self) -> 'MetricWriter':
    return self

  def __exit__(self, *exc: Any) -> None:
    self.close()


def _make_tensorboard_writer(logdir: str, purge_step: int | None) -> Any:
  global _warned_no_tensorboard
  try:
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
  except ImportError:
    if not _warned_no_tensorboard:
      _warned_no_tensorboard = True
      logging.info('tensorboardX is not installed: TensorBoard logging is off '
                   '(metrics.jsonl is still written); to enable it run '
                   '`pip install tensorboardX`')
    return None
  # tensorboardX names the file by the second: without a finer suffix a writer opened
  # within the same second as the last one (a quick restart) would overwrite its file.
  return SummaryWriter(logdir=logdir, flush_secs=30, purge_step=purge_step,
                       filename_suffix=f'.{time.time_ns()}')


# ----------------------------------------------------------------------------
# Progress.


def _format_duration(seconds: float) -> str:
  if not math.isfinite(seconds) or seconds < 0:
    return '?'
  s = int(round(seconds))
  h, rem = divmod(s, 3600)
  m, s = divmod(rem, 60)
  return f'{h}:{m:02d}:{s:02d}' if h else f'{m:02d}:{s:02d}'


def _format_value(value: Any) -> str:
  try:
    v = to_python(value)
  except (TypeError, ValueError):
    return str(value)
  if isinstance(v, float):
    return f'{v:.4g}'
  return str(v)


class Progress:
  """Per-epoch progress: steps/s and ETA.

  On a terminal (stderr is a TTY) it redraws one in-place bar line (at most
  ~10 times a second). Otherwise it only emits `logging.info` lines, at most
  every `log_every_s` seconds or each `log_every_pct` percent of progress,
  whichever comes first, plus one summary line on `close()`.

  The steps/s rate ignores the time of the first update (jit compilation).
  Postfix values (e.g. a jax loss) are only converted when a line is drawn,
  so `update` does not force a device sync on every step.
  """

  def __init__(self,
               total_steps: int,
               desc: str = '',
               enabled: bool = True,
               log_every_s: float = 30.0,
               log_every_pct: float = 25.0,
               stream: TextIO | None = None):
    self.total = max(int(total_steps), 0)
    self.desc = desc
    self.enabled = enabled
    self.log_every_s = log_every_s
    self.log_every_pct = log_every_pct
    self._stream = stream if stream is not None else sys.stderr
    try:
      self._tty = bool(self._stream.isatty())
    except (AttributeError, ValueError):
      self._tty = False
    self.n = 0
    self.postfix: dict[str, Any] = {}
    self._start = time.monotonic()
    self._first_time: float | None = None  # Time of the first update.
    self._first_n = 0
    self._last_draw = -math.inf
    self._last_log = self._start
    self._next_pct = log_every_pct
    self._closed = False
    self._width = 0

  @property
  def rate(self) -> float:
    """Steps per second (excluding the first update), or NaN if unknown."""
    now = time.monotonic()
    if self._first_time is not None and self.n > self._first_n:
      dt = now - self._first_time
      if dt > 0:
        return (self.n - self._first_n) / dt
    dt = now - self._start
    return self.n / dt if dt > 0 and self.n else math.nan

  @property
  def eta(self) -> float:
    r = self.rate
    if not self.total or not r or not math.isfinite(r):
      return math.nan
    return max(self.total - self.n, 0) / r

  def step_dispatched(self, step_outputs: list) -> None:
    """Counts a step of an asynchronous loop (`step_outputs`: one entry per step so far).

    Counts the previous step once it has finished, so that the rate is real
    throughput while one step stays in flight.
    """
    if len(step_outputs) > 1:
      jax.block_until_ready(step_outputs[-2])
    self.update(1)

  def update(self, n: int = 1, **postfix: Any) -> None:
    """Advances by `n` steps; `postfix` values (loss=..., acc=...) are shown."""
    if self._closed:
      return
    self.n += n
    if self._first_time is None:
      self._first_time = time.monotonic()
      self._first_n = self.n
    if postfix:
      self.postfix.update(postfix)
    if not self.enabled:
      return
    now = time.monotonic()
    if self._tty:
      if now - self._last_draw >= 0.1 or self.n >= self.total:
        self._last_draw = now
        self._draw()
      return
    pct = 100.0 * self.n / self.total if self.total else 0.0
    due_time = self.log_every_s and now - self._last_log >= self.log_every_s
    due_pct = self.log_every_pct and self.total and pct >= self._next_pct
    if (due_time or due_pct) and self.n < self.total:
      self._last_log = now
      if self.log_every_pct:
        while self._next_pct <= pct:
          self._next_pct += self.log_every_pct
      logging.info('%s', self.line())

  def line(self, bar: str = '') -> str:
    """The status text: `desc 120/500 (24%) 12.3 steps/s ETA 00:31 k=v`."""
    parts = [self.desc] if self.desc else []
    if bar:
      parts.append(bar)
    if self.total:
      parts.append(f'{self.n}/{self.total} ({100.0 * self.n / self.total:.0f}%)')
    else:
      parts.append(f'{self.n}')
    r = self.rate
    parts.append(f'{r:.2f} steps/s' if math.isfinite(r) else '? steps/s')
    if self.total and self.n < self.total:
      parts.append(f'ETA {_format_duration(self.eta)}')
    parts += [f'{k}={_format_value(v)}' for k, v in self.postfix.items()]
    return ' '.join(parts)

  def _draw(self) -> None:
    bar = ''
    if self.total:
      width = 20
      filled = int(width * min(self.n, self.total) / self.total)
      bar = '|' + '#' * filled + '-' * (width - filled) + '|'
    text = self.line(bar)
    pad = max(self._width - len(text), 0)
    self._width = len(text)
    self._stream.write('\r' + text + ' ' * pad)
    self._stream.flush()

  def close(self) -> None:
    """Finishes the bar (newline) or logs a one-line summary."""
    if self._closed:
      return
    self._closed = True
    if not self.enabled:
      return
    elapsed = time.monotonic() - self._start
    if self._tty:
      self._draw()
      self._stream.write('\n')
      self._stream.flush()
    else:
      r = self.rate
      rate = f'{r:.2f} steps/s' if math.isfinite(r) else '? steps/s'
      post = ' '.join(f'{k}={_format_value(v)}' for k, v in self.postfix.items())
      logging.info('%s done: %d steps in %s (%s)%s', self.desc or 'progress',
                   self.n, _format_duration(elapsed), rate,
                   ' ' + post if post else '')

  def __enter__(self) -> 'Progress':
    return self

  def __exit__(self, *exc: Any) -> None:
    self.close()

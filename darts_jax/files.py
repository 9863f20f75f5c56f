"""Atomic file writes: a crash never leaves a half-written file behind."""

import os
import tempfile
from typing import BinaryIO, Callable


def write_atomic(path: str, write_fn: Callable[[BinaryIO], object]) -> None:
  """Calls write_fn on a temporary file beside `path`, fsyncs, then renames it into place."""
  directory = os.path.dirname(path) or '.'
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp',
                             dir=directory)
  try:
    with os.fdopen(fd, 'wb') as f:
      write_fn(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise

"""Run state on disk: atomic checkpoints, the workdir's config, small files.

A checkpoint is one `.npz` of the state's leaves (in pytree order) written to a
temporary file and renamed into place, so a crash never leaves a half-written
checkpoint; the last `KEEP` are kept. Restoring maps the leaves back onto a
freshly initialised state of the same structure.
"""

import glob
import json
import os
import re
import tempfile

from absl import logging
import jax
import numpy as np

from darts_jax.errors import UserError

KEEP = 2
_NAME = re.compile(r'ckpt_(\d+)\.npz$')


def _atomic(path, write_fn, suffix):
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or '.', suffix=suffix)
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


def write_npz(path, **arrays):
  _atomic(path, lambda f: np.savez(f, **arrays), '.npz.tmp')


def write_json(path, obj):
  _atomic(path, lambda f: f.write((json.dumps(obj, indent=2) + '\n').encode()), '.json.tmp')


def prepare_workdir(workdir, config, mode: str, write: bool = True):
  """Creates the workdir; refuses one that is a file or holds another mode's run."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise UserError(f'workdir {workdir} is a file; pass a directory path')
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise UserError(f'cannot create workdir {workdir} ({e.strerror}); pick a writable path')
  if not os.access(workdir, os.W_OK):
    raise UserError(f'workdir {workdir} is not writable; pick a writable path')
  config_path = os.path.join(workdir, 'config.json')
  if os.path.exists(config_path):
    try:
      with open(config_path, encoding='utf-8') as f:
        previous = json.load(f).get('mode')
    except (OSError, ValueError):
      previous = None
    if previous and previous != mode:
      raise UserError(f'workdir {workdir} holds a {previous!r} run; use a new workdir for '
                      f'this {mode!r} run')
  if write:
    write_json(config_path, json.loads(config.to_json_best_effort()))


def _checkpoints(workdir):
  found = []
  for path in glob.glob(os.path.join(workdir, 'checkpoints', 'ckpt_*.npz')):
    m = _NAME.search(path)
    if m:
      found.append((int(m.group(1)), path))
  return sorted(found)


def save(workdir, state, epoch: int, write: bool = True):
  """Saves the state as of the end of `epoch` and prunes old checkpoints."""
  leaves = jax.device_get(jax.tree.leaves(state))
  if not write:
    return
  arrays = {f'leaf_{i:05d}': np.asarray(x) for i, x in enumerate(leaves)}
  write_npz(os.path.join(workdir, 'checkpoints', f'ckpt_{epoch:06d}.npz'), **arrays)
  for _, path in _checkpoints(workdir)[:-KEEP]:
    os.remove(path)


def restore_latest(workdir, state):
  """(state, epoch) from the newest readable checkpoint, or (state, 0) without one."""
  treedef = jax.tree.structure(state)
  template = jax.tree.leaves(state)
  for epoch, path in reversed(_checkpoints(workdir)):
    try:
      with np.load(path) as f:
        leaves = [f[f'leaf_{i:05d}'] for i in range(len(template))]
      for new, old in zip(leaves, template):
        if new.shape != np.shape(old):
          raise ValueError(f'shape {new.shape} != {np.shape(old)}')
    except Exception as e:  # pylint: disable=broad-except
      logging.warning('checkpoint %s is unreadable (%s); trying the previous one', path, e)
      continue
    leaves = [np.asarray(new).astype(np.asarray(old).dtype) if not jax.dtypes.issubdtype(
        old.dtype, jax.dtypes.prng_key) else new for new, old in zip(leaves, template)]
    return jax.tree.unflatten(treedef, leaves), epoch
  return state, 0

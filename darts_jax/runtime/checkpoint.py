"""Run state on disk: orbax checkpoints, the workdir's config, small files.

A checkpoint is an orbax step directory `<workdir>/checkpoints/<step>/` with two
items: `state`, the whole run state pytree (weights, batch statistics, alphas,
both optimizer states, the step counter), and `meta`, JSON with the step, the
completed epochs, the position in the epoch and, mid-epoch, the metrics of the
epoch's steps so far (so the epoch's averages in metrics.jsonl cover all its
steps after a resume). Nothing else is needed to resume exactly:

- the RNG is not stored: every step's key is fold_in(key(config.seed), step),
  so the step counter is the RNG state;
- the data position is `step % steps_per_epoch`: each epoch's batch order is a
  function of (seed, epoch) (`data.epoch_batches`), so a resumed run skips the
  epoch's first batches.

Orbax writes a step into a temporary directory and renames it into place when
complete, so a killed run never leaves a half-written checkpoint; saving here
is synchronous and the last `keep` checkpoints are kept.
"""

import json
import logging as std_logging
import os
import shutil

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp

from darts_jax import files
from darts_jax.errors import UserError

KEEP = 2
CHECKPOINTS = 'checkpoints'
UNREADABLE = 'checkpoints_unreadable'


def _not_orbax_info(record) -> bool:
  """Drops orbax's INFO lines (dozens per save); its warnings and errors stay."""
  is_orbax = f'{os.sep}orbax{os.sep}' in record.pathname
  return record.levelno >= std_logging.WARNING or not is_orbax


logging.get_absl_logger().addFilter(_not_orbax_info)


def write_npz(path, **arrays):
  files.write_atomic(path, lambda f: np.savez(f, **arrays))


def write_json(path, obj):
  files.write_atomic(path, lambda f: f.write((json.dumps(obj, indent=2) + '\n').encode()))


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
    except (OSError, ValueError, AttributeError):
      previous = None
    if previous and previous != mode:
      raise UserError(f'workdir {workdir} holds a {previous!r} run; use a new workdir for '
                      f'this {mode!r} run')
  if write:
    write_json(config_path, json.loads(config.to_json_best_effort()))


def checkpoint_dir(workdir) -> str:
  return os.path.abspath(os.path.join(workdir, CHECKPOINTS))


def _manager(workdir, keep: int = KEEP) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
      max_to_keep=keep, create=True, enable_async_checkpointing=False,
      cleanup_tmp_directories=True)
  return ocp.CheckpointManager(checkpoint_dir(workdir), options=options)


def saved_steps(workdir) -> list:
  """Steps of the complete checkpoints in `workdir`, oldest first."""
  if not os.path.isdir(checkpoint_dir(workdir)):
    return []
  with _manager(workdir) as manager:
    return sorted(manager.all_steps())


def save(workdir, state, step: int, steps_per_epoch: int, keep: int = KEEP,
         epoch_step_metrics=(), data_split: str = '', finished: bool = False):
  """Saves the state after `step` steps (synchronously) and prunes to the last `keep`.

  Every process calls it (orbax writes from the primary one). `epoch_step_metrics`:
  one dict of float scalars per step of the epoch so far (kept in the meta JSON);
  `data_split`: a fingerprint of the run's data split (a search's), checked on resume;
  `finished`: the run ended here before its last epoch (a method stopped it), so a resume
  trains no further.
  """
  epoch, step_in_epoch = divmod(int(step), steps_per_epoch)
  meta = {'step': int(step), 'epoch': epoch, 'step_in_epoch': step_in_epoch,
          'steps_per_epoch': steps_per_epoch,
          'epoch_step_metrics': [dict(m) for m in epoch_step_metrics]}
  if data_split:
    meta['data_split'] = data_split
  if finished:
    meta['finished'] = True
  with _manager(workdir, keep) as manager:
    if step in manager.all_steps():  # Saving the same step again replaces it.
      manager.delete(step)
    elif (jax.process_index() == 0 and
          os.path.exists(os.path.join(checkpoint_dir(workdir), str(step)))):
      _set_aside(workdir, [step])  # A damaged one orbax does not list: kept aside.
    manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                               meta=ocp.args.JsonSave(meta)))
    manager.wait_until_finished()


def _restore(manager, step, abstract_state):
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
  return restored['state'], dict(restored['meta'])


def _set_aside(workdir, steps):
  """Moves unreadable checkpoints to <workdir>/checkpoints_unreadable/ (never deletes)."""
  for step in steps:
    target = os.path.join(workdir, UNREADABLE, str(step))
    if os.path.exists(target):
      target += f'.{len(os.listdir(os.path.dirname(target)))}'
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.move(os.path.join(checkpoint_dir(workdir), str(step)), target)
    logging.warning('moved the unreadable checkpoint of step %d to %s', step, target)


def restore_latest(workdir, state):
  """(state, meta) from the newest readable checkpoint, or (state, None) without one.

  The restored arrays get the shapes, dtypes and shardings of `state`'s.

  An unreadable checkpoint is logged and set aside and the previous one is
  tried; if there are checkpoints but none is readable, raises UserError and
  leaves every file where it is.
  """
  steps = saved_steps(workdir)
  if not steps:
    return state, None
  abstract_state = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  unreadable = []
  with _manager(workdir) as manager:
    for step in reversed(steps):
      try:
        restored, meta = _restore(manager, step, abstract_state)
      except Exception as e:  # pylint: disable=broad-except
        reason = ' '.join(str(e).split())[:200] or type(e).__name__
        logging.warning('checkpoint of step %d in %s is unreadable (%s); trying the '
                        'previous one', step, checkpoint_dir(workdir), reason)
        print(f'warning: checkpoint of step {step} is unreadable ({reason}); trying the '
              'previous one', flush=True)
        unreadable.append((step, reason))
        continue
      break
    else:
      newest, reason = unreadable[0]
      raise UserError(
          f'none of the {len(steps)} checkpoints in {checkpoint_dir(workdir)} is readable '
          f'(step {newest}: {reason}); nothing was deleted; they may be damaged or from '
          'another config: move the directory away to start over')
  if unreadable and jax.process_index() == 0:
    _set_aside(workdir, [s for s, _ in unreadable])
  print(f'resuming from the checkpoint of step {step} in {checkpoint_dir(workdir)}',
        flush=True)
  return restored, meta


def check_resumable(meta, steps_per_epoch: int, workdir) -> None:
  """Raises UserError when the restored checkpoint counts its epochs in other steps.

  The step counter is the position in the data and the schedules: a checkpoint
  written with another epoch length would resume at a wrong epoch and batch.
  """
  saved = (meta or {}).get('steps_per_epoch', steps_per_epoch)
  if saved != steps_per_epoch:
    raise UserError(
        f'the checkpoints in {checkpoint_dir(workdir)} were written with {saved} steps per '
        f'epoch and this config gives {steps_per_epoch}: resume with the batch size, '
        'max_steps_per_epoch, train_portion, search_subset and dataset the run started with, '
        'or pass a new --workdir')


def check_same_data_split(meta, data_split: str, workdir, unrecorded: str) -> None:
  """Raises UserError when the restored checkpoint was written on another data split.

  `unrecorded`: the split of checkpoints written before splits were recorded (then a
  search always split at random).
  """
  if meta and meta.get('data_split', unrecorded) != data_split:
    raise UserError(
        f'the checkpoints in {checkpoint_dir(workdir)} were written on another '
        'search-train / search-val split: resume with the seed, data and '
        'config.dataset settings (search_split, train_portion, search_subset) the run '
        'started with (checkpoints from before config.dataset.search_split existed: '
        'search_split="random"), or pass a new --workdir')


def truncate_jsonl(path, max_epoch: int):
  """Drops the lines of a JSON-lines file whose 'epoch' is after `max_epoch`.

  A resumed run rewrites the epochs after its checkpoint; without this their
  lines from the interrupted run would appear twice.
  """
  if not os.path.exists(path):
    return
  with open(path, encoding='utf-8') as f:
    lines = f.readlines()
  kept = [line for line in lines if _line_epoch(line) <= max_epoch]
  if len(kept) != len(lines):
    files.write_atomic(path, lambda f: f.write(''.join(kept).encode()))


def _line_epoch(line: str) -> float:
  try:
    return json.loads(line).get('epoch', 0)
  except (ValueError, AttributeError):
    return float('inf')  # A torn last line from a killed run.

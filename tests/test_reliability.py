"""Preemption-safe, bitwise-reproducible runs: SIGKILL, SIGTERM, damaged checkpoints, NaN.

The end-to-end tests run `python -m darts_jax.main` on the tiny config in
subprocesses (a checkpoint after every step) that share the tests' persistent
XLA compilation cache, and compare the final alphas bit for bit with an
uninterrupted run.
"""

import glob
import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from darts_jax import configs
from darts_jax import data
from darts_jax import main
from darts_jax.errors import UserError
from darts_jax.runtime import checkpoint
from darts_jax.runtime import metrics
from darts_jax.runtime import preemption
from darts_jax.train import parts as train_parts

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
CACHE = os.environ['DARTS_JAX_TEST_CACHE']  # Set by conftest.py: this session's cache.

TINY_STEPS = 6  # search_tiny: 2 epochs of 3 steps.


# ---------------------------------------------------------------------------
# Helpers.


def _command(workdir, *overrides):
  return [sys.executable, '-m', 'darts_jax.main', '--config=experiments/search_tiny.py',
          f'--workdir={workdir}', f'--compilation_cache={CACHE}', *overrides]


def _start(workdir, *overrides):
  log = open(f'{workdir}.{time.monotonic_ns()}.log', 'w+', encoding='utf-8')
  proc = subprocess.Popen(_command(workdir, *overrides), cwd=ROOT, stdout=log,
                          stderr=subprocess.STDOUT, text=True)
  proc.log = log
  return proc


def _output(proc) -> str:
  proc.log.flush()
  proc.log.seek(0)
  return proc.log.read()


def _finish(proc, timeout=600) -> str:
  proc.wait(timeout=timeout)
  return _output(proc)


def _steps(workdir) -> list:
  path = os.path.join(workdir, checkpoint.CHECKPOINTS)
  return sorted(int(n) for n in os.listdir(path) if n.isdigit()) if os.path.isdir(path) else []


def _wait_for_checkpoint(proc, workdir, min_step, timeout=600) -> int:
  """Polls until a complete checkpoint of step >= min_step exists; returns the newest."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    steps = _steps(workdir)
    if steps and steps[-1] >= min_step:
      return steps[-1]
    if proc.poll() is not None:
      pytest.fail(f'the run exited ({proc.returncode}) before checkpoint {min_step}:\n'
                  + _output(proc)[-3000:])
    time.sleep(0.02)
  proc.kill()
  pytest.fail(f'no checkpoint {min_step} within {timeout} s')


def _kill_after_checkpoint(workdir, min_step) -> int:
  proc = _start(workdir)
  step = _wait_for_checkpoint(proc, workdir, min_step)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  return step


def _alphas(workdir) -> dict:
  with np.load(os.path.join(workdir, 'alphas.npz')) as f:
    return {k: f[k] for k in f.files}


def _assert_bitwise_equal(workdir_a, workdir_b):
  a, b = _alphas(workdir_a), _alphas(workdir_b)
  assert a.keys() == b.keys()
  for key in a:
    assert a[key].dtype == b[key].dtype and a[key].tobytes() == b[key].tobytes(), key
  for name in ('genotype.txt', 'genotype.json'):
    with open(os.path.join(workdir_a, name)) as fa, open(os.path.join(workdir_b, name)) as fb:
      assert fa.read() == fb.read(), name


def _jsonl(path) -> list:
  with open(path, encoding='utf-8') as f:
    return [json.loads(line) for line in f]


def _jsonl_epochs(path) -> list:
  return [record['epoch'] for record in _jsonl(path)]


EPOCH_AVERAGES = ('train_loss', 'train_acc', 'search_val_loss', 'search_val_acc')


def _tensorboard_scalars(logdir, tag) -> dict:
  """{step: [values]} of `tag` as TensorBoard shows it: a SessionLog.START at step T
  (a writer's purge_step) hides the earlier files' events from step T on."""
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  shown = {}
  for path in sorted(glob.glob(os.path.join(logdir, 'events.out.tfevents.*'))):
    with open(path, 'rb') as f:
      data = f.read()
    offset = 0
    while offset < len(data):  # TFRecord: length, its crc, payload, payload crc.
      (length,) = struct.unpack('<Q', data[offset:offset + 8].ljust(8, b'\0'))
      if offset + 16 + length > len(data):
        break  # The torn last record of a killed run (TensorBoard skips it too).
      event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
      offset += 16 + length
      if event.session_log.status == event_pb2.SessionLog.START:
        shown = {step: v for step, v in shown.items() if step < event.step}
      for value in event.summary.value:
        if value.tag == tag:
          shown.setdefault(event.step, []).append(value.simple_value)
  return shown


def _damage(directory):
  """Overwrites every file under `directory` with garbage."""
  for path in glob.glob(os.path.join(directory, '**'), recursive=True):
    if os.path.isfile(path):
      with open(path, 'wb') as f:
        f.write(b'\x00garbage')


def _tree_digest(directory) -> dict:
  digest = {}
  for path in sorted(glob.glob(os.path.join(directory, '**'), recursive=True)):
    if os.path.isfile(path):
      with open(path, 'rb') as f:
        digest[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
  return digest


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
  """An uninterrupted tiny search."""
  workdir = str(tmp_path_factory.mktemp('reference') / 'run')
  proc = _start(workdir)
  out = _finish(proc)
  assert proc.returncode == 0, out[-3000:]
  assert _steps(workdir)[-1] == TINY_STEPS
  return workdir


# ---------------------------------------------------------------------------
# End to end (subprocesses).


@pytest.mark.slow
def test_preempted_killed_and_damaged_run_ends_bitwise_identical(reference, tmp_path):
  workdir = str(tmp_path / 'run')
  # 1. SIGTERM after the first checkpoint (the handler is on by then), with five
  #    steps and an epoch end still to run: the run checkpoints the step it is on
  #    and exits 0.
  proc = _start(workdir)
  _wait_for_checkpoint(proc, workdir, 1)
  sent = time.monotonic()
  proc.send_signal(signal.SIGTERM)
  out = _finish(proc, timeout=120)
  exit_seconds = time.monotonic() - sent
  assert proc.returncode == 0, out[-3000:]
  assert 'preempted: True' in out, out[-3000:]
  stopped = _steps(workdir)[-1]
  assert stopped < TINY_STEPS
  assert f'stopped by SIGTERM after step {stopped}' in out
  assert exit_seconds < 30, exit_seconds
  # 2. SIGKILL after a later checkpoint, 3. SIGKILL around the end of epoch 1.
  first = _kill_after_checkpoint(workdir, stopped + 1)
  second = _kill_after_checkpoint(workdir, max(first + 1, 3))
  assert _steps(workdir)[-1] >= 3

  # 4. The newest checkpoint is damaged: the run says so, resumes from the
  #    previous one and runs to the end.
  steps = _steps(workdir)
  newest, previous = steps[-1], steps[-2]
  _damage(os.path.join(workdir, checkpoint.CHECKPOINTS, str(newest)))
  proc = _start(workdir)
  out = _finish(proc)
  assert proc.returncode == 0, out[-3000:]
  assert f'checkpoint of step {newest} is unreadable' in out
  assert f'resuming from the checkpoint of step {previous}' in out
  assert os.path.isdir(os.path.join(workdir, checkpoint.UNREADABLE, str(newest)))
  _assert_bitwise_equal(reference, workdir)
  # Epoch lines of the interrupted runs are not duplicated, and each epoch's averages
  # cover all its steps (mid-epoch checkpoints keep the steps run before them).
  records = _jsonl(os.path.join(workdir, 'metrics.jsonl'))
  reference_records = _jsonl(os.path.join(reference, 'metrics.jsonl'))
  assert [r['epoch'] for r in records] == [1, 2]
  for got, want in zip(records, reference_records):
    assert {k: got[k] for k in EPOCH_AVERAGES} == {k: want[k] for k in EPOCH_AVERAGES}
  assert _jsonl_epochs(os.path.join(workdir, 'genotypes.jsonl')) == [1, 2]
  # TensorBoard shows one point per epoch: the interrupted runs' later points are purged.
  logdir = os.path.join(workdir, metrics.TENSORBOARD_SUBDIR)
  assert _tensorboard_scalars(logdir, 'train_loss') == {
      r['step']: [pytest.approx(r['train_loss'])] for r in records}
  print(f'SIGTERM after step {stopped} (exit in {exit_seconds:.1f} s); killed after checkpoints '
        f'{first} and {second}')


@pytest.mark.slow
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(reference, tmp_path):
  workdir = str(tmp_path / 'run')
  shutil.copytree(reference, workdir)
  # A state on the edge of divergence: the checkpoint of step 5 with every weight
  # scaled to near float32's largest value (still finite). Same program as the
  # reference run, so no new compile.
  shutil.rmtree(os.path.join(checkpoint.checkpoint_dir(workdir), str(TINY_STEPS)))
  config = configs.search_tiny_config()
  info = data.get_info(config.dataset.name)
  template = train_parts.SearchParts.from_config(config, info.num_classes).init_state(
      info.image_shape)
  state, meta = checkpoint.restore_latest(workdir, template)
  assert meta['step'] == TINY_STEPS - 1
  state['params'] = jax.tree.map(lambda w: w * 1e37, state['params'])
  assert all(np.all(np.isfinite(w)) for w in jax.tree.leaves(state['params']))
  checkpoint.save(workdir, state, meta['step'], meta['steps_per_epoch'],
                  data_split=meta['data_split'])
  good = os.path.join(checkpoint.checkpoint_dir(workdir), str(meta['step']))
  before = _tree_digest(good)

  proc = _start(workdir)
  out = _finish(proc)
  assert proc.returncode == 2, out[-3000:]
  last = out.strip().splitlines()[-1]
  assert last == (f'error: non-finite loss or gradient at step {TINY_STEPS} (epoch 2); stopped '
                  f'without saving, the last good checkpoint (step {TINY_STEPS - 1}) is kept; '
                  'lower config.train.lr or config.arch.lr'), last
  assert _steps(workdir) == [TINY_STEPS - 1]
  assert _tree_digest(good) == before


@pytest.mark.slow
def test_all_checkpoints_unreadable_is_a_clear_error_and_deletes_nothing(reference, tmp_path):
  workdir = str(tmp_path / 'run')
  shutil.copytree(reference, workdir)
  for step in _steps(workdir):
    _damage(os.path.join(workdir, checkpoint.CHECKPOINTS, str(step)))
  before = _tree_digest(workdir)
  config = configs.search_tiny_config()
  with pytest.raises(UserError, match='none of the 2 checkpoints') as info:
    main.run(config, workdir)
  assert '\n' not in str(info.value)
  after = _tree_digest(workdir)
  assert {k: v for k, v in after.items() if k != 'config.json'} == {
      k: v for k, v in before.items() if k != 'config.json'}


# ---------------------------------------------------------------------------
# The checkpoint module and the step guard on a small pytree (fast).


def _small_state(value: float):
  return {'step': jnp.array(int(value), jnp.int32),
          'params': {'w': jnp.full((3, 2), value, jnp.float32)},
          'opt': (jnp.zeros(2, jnp.float32), jnp.array(0, jnp.int32))}


def test_save_keeps_the_last_k_and_restores_the_newest(tmp_path):
  workdir = str(tmp_path)
  for step in (1, 2, 3):
    checkpoint.save(workdir, _small_state(step), step, steps_per_epoch=2, keep=2)
  assert checkpoint.saved_steps(workdir) == [2, 3]
  state, meta = checkpoint.restore_latest(workdir, _small_state(0))
  assert meta == {'step': 3, 'epoch': 1, 'step_in_epoch': 1, 'steps_per_epoch': 2,
                  'epoch_step_metrics': []}
  assert float(state['params']['w'][0, 0]) == 3.0 and int(state['step']) == 3


def test_no_checkpoint_starts_fresh(tmp_path):
  state, meta = checkpoint.restore_latest(str(tmp_path), _small_state(7))
  assert meta is None and int(state['step']) == 7


def test_damaged_newest_checkpoint_falls_back_to_the_previous(tmp_path, capsys):
  workdir = str(tmp_path)
  for step in (1, 2):
    checkpoint.save(workdir, _small_state(step), step, steps_per_epoch=2)
  _damage(os.path.join(workdir, checkpoint.CHECKPOINTS, '2'))
  state, meta = checkpoint.restore_latest(workdir, _small_state(0))
  assert meta['step'] == 1 and float(state['params']['w'][0, 0]) == 1.0
  assert 'checkpoint of step 2 is unreadable' in capsys.readouterr().out
  assert os.path.isdir(os.path.join(workdir, checkpoint.UNREADABLE, '2'))
  # The next save of step 2 works (the damaged one no longer blocks it).
  checkpoint.save(workdir, _small_state(2), 2, steps_per_epoch=2)
  assert checkpoint.saved_steps(workdir) == [1, 2]


def test_checkpoint_of_another_shape_is_unreadable(tmp_path):
  workdir = str(tmp_path)
  checkpoint.save(workdir, _small_state(1), 1, steps_per_epoch=2)
  other = _small_state(0)
  other['params']['w'] = jnp.zeros((4, 2))
  before = _tree_digest(workdir)
  with pytest.raises(UserError, match='none of the 1 checkpoints'):
    checkpoint.restore_latest(workdir, other)
  assert _tree_digest(workdir) == before


def test_resume_with_another_epoch_length_is_a_clear_error(tmp_path):
  workdir = str(tmp_path)
  checkpoint.save(workdir, _small_state(3), 3, steps_per_epoch=2)
  _, meta = checkpoint.restore_latest(workdir, _small_state(0))
  checkpoint.check_resumable(meta, 2, workdir)
  checkpoint.check_resumable(None, 5, workdir)  # Nothing restored: nothing to check.
  with pytest.raises(UserError, match='written with 2 steps per epoch and this config '
                     'gives 3: resume with the batch size'):
    checkpoint.check_resumable(meta, 3, workdir)
  assert checkpoint.saved_steps(workdir) == [3]


def test_resume_on_another_data_split_is_a_clear_error(tmp_path):
  workdir = str(tmp_path)
  checkpoint.save(workdir, _small_state(3), 3, steps_per_epoch=2, data_split='abc')
  _, meta = checkpoint.restore_latest(workdir, _small_state(0))
  assert meta['data_split'] == 'abc'
  checkpoint.check_same_data_split(meta, 'abc', workdir, unrecorded='random')
  checkpoint.check_same_data_split(None, 'xyz', workdir, unrecorded='random')  # Nothing restored.
  with pytest.raises(UserError, match='written on another search-train / search-val split'):
    checkpoint.check_same_data_split(meta, 'xyz', workdir, unrecorded='abc')
  # A checkpoint from before the split was recorded: the seeded random split's.
  del meta['data_split']
  checkpoint.check_same_data_split(meta, 'random', workdir, unrecorded='random')
  with pytest.raises(UserError, match='search_split="random"'):
    checkpoint.check_same_data_split(meta, 'ordered', workdir, unrecorded='random')


def test_step_guard_never_saves_a_non_finite_state(tmp_path):
  workdir = str(tmp_path)
  guard = preemption.StepGuard(workdir, steps_per_epoch=10, every_steps=2, keep=2,
                               stop_request=preemption.StopRequest(), hint='lower the lr')
  epoch_metrics = preemption.EpochMetrics()
  guard.add(1, jnp.array(True))
  guard.add(2, jnp.array(True))
  assert not guard.after_step(_small_state(2), 2, epoch_metrics)
  assert checkpoint.saved_steps(workdir) == [2]
  guard.add(3, jnp.array(False))
  guard.add(4, jnp.array(True))
  with pytest.raises(UserError, match=r'step 3 \(epoch 1\).*step 2\) is kept; lower the lr'):
    guard.after_step(_small_state(4), 4, epoch_metrics)
  assert checkpoint.saved_steps(workdir) == [2]


def test_step_guard_saves_and_stops_on_request(tmp_path):
  workdir = str(tmp_path)
  previous_handler = signal.getsignal(signal.SIGTERM)
  with preemption.stop_on_sigterm() as request:
    guard = preemption.StepGuard(workdir, steps_per_epoch=10, every_steps=0, keep=2,
                                 stop_request=request, hint='')
    epoch_metrics = preemption.EpochMetrics()
    for step, loss in ((1, 0.5), (2, 0.25)):
      epoch_metrics.append({'loss': jnp.array(loss), 'finite': jnp.array(True)})
      guard.add(step, jnp.array(True))
      if step == 1:
        assert not guard.after_step(_small_state(1), 1, epoch_metrics)
        os.kill(os.getpid(), signal.SIGTERM)
    assert guard.after_step(_small_state(2), 2, epoch_metrics)
  assert checkpoint.saved_steps(workdir) == [2]
  assert guard.preempted_result(2)['preempted']
  assert signal.getsignal(signal.SIGTERM) is previous_handler
  # The checkpoint keeps the epoch's two steps; a resumed epoch starts with them.
  _, meta = checkpoint.restore_latest(workdir, _small_state(0))
  assert meta['epoch_step_metrics'] == [{'loss': 0.5}, {'loss': 0.25}]
  resumed = preemption.EpochMetrics()
  resumed.resume(meta, meta['step_in_epoch'])
  resumed.append({'loss': jnp.array(0.75), 'finite': jnp.array(True)})
  assert resumed.resumed == 2 and resumed.mean(resumed.host(), 'loss') == 0.5


def test_epoch_metrics_without_recorded_steps_average_the_new_ones(caplog):
  epoch_metrics = preemption.EpochMetrics()
  epoch_metrics.resume({'step': 3, 'step_in_epoch': 1}, 1)  # An older checkpoint's meta.
  assert 'no metrics of the 1 steps' in caplog.text
  epoch_metrics.append({'loss': jnp.array(2.0), 'finite': jnp.array(True)})
  assert epoch_metrics.resumed == 0 and epoch_metrics.host() == [{'loss': 2.0}]


def test_resumed_metric_writer_hides_the_interrupted_runs_later_points(tmp_path):
  interrupted = metrics.MetricWriter(str(tmp_path), first_step=1)
  for step in (2, 4, 6):  # Killed after writing step 6, before its checkpoint.
    interrupted.write(step, {'epoch': step // 2, 'train_loss': float(step)})
  interrupted.close()
  resumed = metrics.MetricWriter(str(tmp_path), first_step=4 + 1)  # Checkpoint of step 4.
  resumed.write(6, {'epoch': 3, 'train_loss': 60.0})
  resumed.close()
  logdir = os.path.join(str(tmp_path), metrics.TENSORBOARD_SUBDIR)
  assert _tensorboard_scalars(logdir, 'train_loss') == {2: [2.0], 4: [4.0], 6: [60.0]}


def test_truncate_jsonl_drops_epochs_after_the_checkpoint(tmp_path):
  path = tmp_path / 'metrics.jsonl'
  path.write_text('{"epoch": 1}\n{"epoch": 2}\n{"epoch": 3}\n{"epo')
  checkpoint.truncate_jsonl(str(path), 2)
  assert path.read_text() == '{"epoch": 1}\n{"epoch": 2}\n'


@pytest.mark.parametrize('field,value', [('checkpoint_every_steps', -1),
                                         ('checkpoints_to_keep', 0)])
def test_bad_checkpoint_settings(field, value):
  config = configs.search_tiny_config()
  config[field] = value
  with pytest.raises(UserError, match=field):
    preemption.checkpoint_settings(config)

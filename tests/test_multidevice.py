"""Data parallel over fake CPU devices and processes: same results as one device.

The device count is fixed when JAX starts, so every multi-device run is a
subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=N. The
subprocesses share one persistent compilation cache (the first run of this
file compiles everything: several minutes on a 2-core CPU; later runs reuse it).
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from darts_jax import configs
from darts_jax import data
from darts_jax.errors import UserError
from darts_jax.methods.base import Forward
from darts_jax.runtime import parallel
from darts_jax.train import checks
from darts_jax.train import parts as train_parts
from darts_jax.train import steps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CACHE = os.environ['DARTS_JAX_TEST_CACHE']  # Set by conftest.py: this session's cache.
# A few search steps: two epochs of 2 steps of experiments/search_tiny.py (which
# checkpoints after every step).
SEARCH_FLAGS = ['--config=experiments/search_tiny.py', '--config.train.epochs=2',
                '--config.max_steps_per_epoch=2', f'--compilation_cache={CACHE}']
SEARCH_STEPS = 4
TIMEOUT_S = 900


def env_with_devices(num_devices: int) -> dict:
  return dict(os.environ, JAX_PLATFORMS='cpu',
              XLA_FLAGS=f'--xla_force_host_platform_device_count={num_devices}')


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def check_ok(proc_or_procs):
  for proc in proc_or_procs if isinstance(proc_or_procs, list) else [proc_or_procs]:
    assert proc.returncode == 0, getattr(proc, 'output', proc.stderr)[-3000:]


def run_search(workdir, num_devices: int, extra_flags=()):
  return subprocess.run(
      [sys.executable, '-m', 'darts_jax.main', f'--workdir={workdir}', *SEARCH_FLAGS,
       *extra_flags], cwd=ROOT, env=env_with_devices(num_devices), capture_output=True,
      text=True, timeout=TIMEOUT_S, check=False)


def start_search_processes(workdir, num_processes: int, devices_per_process: int,
                           extra_flags=()):
  """One search as `num_processes` processes on localhost (gloo CPU collectives).

  Output goes to files (`<workdir>.<i>.log`): a pipe nobody reads could fill and stall.
  """
  port = free_port()
  procs = []
  for i in range(num_processes):
    log = open(f'{workdir}.{i}.log', 'w+', encoding='utf-8')  # pylint: disable=consider-using-with
    procs.append(subprocess.Popen(
        [sys.executable, '-m', 'darts_jax.main', f'--workdir={workdir}', *SEARCH_FLAGS,
         *extra_flags, f'--coordinator_address=localhost:{port}',
         f'--num_processes={num_processes}', f'--process_id={i}'],
        cwd=ROOT, env=env_with_devices(devices_per_process), stdout=log,
        stderr=subprocess.STDOUT, text=True))
    procs[-1].log = log
  return procs


def finish_processes(procs):
  """Waits for every process; `proc.output` is its stdout and stderr."""
  for p in procs:
    p.wait(timeout=TIMEOUT_S)
    p.log.seek(0)
    p.output = p.log.read()
    p.log.close()
  return procs


def run_search_processes(workdir, num_processes: int, devices_per_process: int,
                         extra_flags=()):
  return finish_processes(start_search_processes(workdir, num_processes, devices_per_process,
                                                 extra_flags))


def outputs(workdir):
  alphas = np.load(os.path.join(workdir, 'alphas.npz'))
  with open(os.path.join(workdir, 'genotype.txt'), encoding='utf-8') as f:
    genotype = f.read().strip()
  with open(os.path.join(workdir, 'genotypes.jsonl'), encoding='utf-8') as f:
    genotype_lines = f.readlines()
  with open(os.path.join(workdir, 'metrics.jsonl'), encoding='utf-8') as f:
    losses = [[r[k] for k in ('train_loss', 'search_val_loss', 'val_loss')]
              for r in map(json.loads, f)]
  return alphas, genotype, genotype_lines, losses


@pytest.fixture(scope='module')
def one_device_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('one_device'))
  check_ok(run_search(workdir, 1))
  return outputs(workdir)


def assert_same_search(got, want):
  alphas, genotype, genotype_lines, losses = got
  want_alphas, want_genotype, _, want_losses = want
  for cell in ('normal', 'reduce'):
    np.testing.assert_allclose(alphas[cell], want_alphas[cell], rtol=0, atol=1e-5)
  assert genotype == want_genotype
  assert len(genotype_lines) == 2  # One per epoch, written once (by process 0 only).
  # Per-epoch train, search-validation and validation losses: the weights took the same
  # steps (Adam's alpha steps alone would hide a wrongly scaled weight gradient).
  np.testing.assert_allclose(losses, want_losses, rtol=1e-4)


@pytest.mark.slow
def test_eight_devices_give_the_one_device_search(one_device_run, tmp_path):
  check_ok(run_search(str(tmp_path), 8))
  assert_same_search(outputs(str(tmp_path)), one_device_run)


@pytest.mark.slow
def test_two_processes_preempted_on_one_resume_to_the_one_device_search(one_device_run,
                                                                        tmp_path):
  """2 processes x 2 devices. A preemption notice (SIGTERM) that reaches process 1 only:
  through JAX's preemption service both checkpoint the same step and exit 0; rerun, they
  resume from it and end with the one-device search's alphas and genotype."""
  workdir = str(tmp_path / 'run')
  checkpoints = os.path.join(workdir, 'checkpoints')
  steps = lambda: sorted(int(n) for n in os.listdir(checkpoints) if n.isdigit()) if (
      os.path.isdir(checkpoints)) else []
  procs = start_search_processes(workdir, 2, 2)
  deadline = time.monotonic() + TIMEOUT_S
  while not steps() and time.monotonic() < deadline:
    assert all(p.poll() is None for p in procs), 'a process exited before checkpoint 1'
    time.sleep(0.05)
  # After checkpoint 1 the processes are at most in step 2, which ends epoch 1 (an
  # evaluation and pictures follow), so the agreed step is 2 or 3, before the last.
  procs[1].send_signal(signal.SIGTERM)
  check_ok(finish_processes(procs))
  stopped = [re.findall(r'^step: (\d+)$', p.output, re.M) for p in procs]
  assert all('preempted: True' in p.output for p in procs), procs[0].output[-3000:]
  assert stopped[0] == stopped[1] and len(stopped[0]) == 1, stopped
  assert steps()[-1] == int(stopped[0][0]) < SEARCH_STEPS
  procs = run_search_processes(workdir, num_processes=2, devices_per_process=2)
  check_ok(procs)
  assert 'resuming from the checkpoint of step' in procs[0].output
  assert steps()[-1] == SEARCH_STEPS
  assert_same_search(outputs(workdir), one_device_run)


# A forward pass of the tiny supernet in train mode on 8 devices: the loss and the
# new running statistics equal one device's, and differ from per-device batch norm.
BN_SCRIPT = r'''
import sys
import jax
import numpy as np
jax.config.update('jax_compilation_cache_dir', sys.argv[1])
from darts_jax import configs, data
from darts_jax.methods.base import Forward
from darts_jax.runtime import parallel
from darts_jax.train import parts as train_parts, steps

assert jax.device_count() == 8, jax.devices()
config = configs.search_tiny_config()
info = data.get_info('digits')
parts = train_parts.SearchParts.from_config(config, info.num_classes)
model, state = parts.model, parts.init_state(info.image_shape)
weights = lambda alphas: parts.method.edge_weights(alphas, Forward.VALIDATION, None, 0)
rng = np.random.default_rng(0)
batch = {'image': rng.normal(size=(16,) + info.image_shape).astype(np.float32),
         'label': rng.integers(0, 10, 16).astype(np.int32)}
loss_fn = jax.jit(steps.make_loss_fn(model, state['batch_stats'], np.float32, weights))
one_loss, (_, one_stats) = loss_fn(state['params'], state['alphas'], batch)
mesh = parallel.make_mesh()
args = (parallel.replicate(state['params'], mesh), parallel.replicate(state['alphas'], mesh),
        parallel.shard_batch(batch, mesh))
assert 'all-reduce' in loss_fn.lower(*args).compile().as_text()
loss, (_, stats) = loss_fn(*args)
np.testing.assert_allclose(loss, one_loss, rtol=1e-5)
for a, b in zip(jax.tree.leaves(stats), jax.tree.leaves(one_stats)):
  np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
# Batch norm per device (2 images each) would give another loss.
chunks = [jax.tree.map(lambda x: x[i:i + 2], batch) for i in range(0, 16, 2)]
local = np.mean([loss_fn(state['params'], state['alphas'], c)[0] for c in chunks])
assert abs(local - one_loss) > 1e-3, (local, one_loss)
print('bn ok', float(loss), float(one_loss), float(local))
'''


@pytest.mark.slow
def test_batch_norm_statistics_are_over_the_global_batch():
  proc = subprocess.run([sys.executable, '-c', BN_SCRIPT, CACHE], cwd=ROOT,
                        env=env_with_devices(8), capture_output=True, text=True,
                        timeout=TIMEOUT_S, check=False)
  check_ok(proc)
  assert 'bn ok' in proc.stdout


# --- Config checks and flags (no subprocess).


@pytest.mark.parametrize('field', ['train.batch_size', 'eval_batch_size'])
def test_batches_not_divisible_across_devices_are_clear(field):
  config = configs.search_tiny_config()
  if field == 'train.batch_size':
    config.train.batch_size = 12
  else:
    config.eval_batch_size = 60
  with pytest.raises(UserError, match=f'config.{field} .* does not divide across 8 devices'):
    train_parts.check_config(config, data.get_info('digits'), num_devices=8, process_count=1)


def test_augment_eval_batch_not_divisible_is_clear():
  config = configs.augment_digits_config()
  config.eval_batch_size = 100
  with pytest.raises(UserError, match='config.eval_batch_size 100 does not divide across 8'):
    checks.check_evaluation(config, num_devices=8, process_count=1)
  config.eval_batch_size = 64
  with pytest.raises(UserError, match='does not divide across 3 processes'):
    checks.check_evaluation(config, num_devices=1, process_count=3)


def test_process_rows_split_a_global_batch():
  rows = [parallel.process_rows(12, i, 3) for i in range(3)]
  assert np.concatenate([np.arange(12)[r] for r in rows]).tolist() == list(range(12))
  # The same rows as the training batches of data.epoch_batches.
  batches = data.epoch_batches(np.arange(40), 12, seed=0, epoch=0)
  for i, r in enumerate(rows):
    np.testing.assert_array_equal(
        data.epoch_batches(np.arange(40), 12, seed=0, epoch=0, process_index=i,
                           process_count=3), batches[:, r])


def test_distributed_args():
  assert parallel.distributed_args('off') is None
  assert parallel.distributed_args('auto') == {}
  assert parallel.distributed_args('off', 'host:1234', 2, 1) == {
      'coordinator_address': 'host:1234', 'num_processes': 2, 'process_id': 1}
  with pytest.raises(UserError, match='process_id'):
    parallel.distributed_args('off', 'host:1234', 2, 2)
  with pytest.raises(UserError, match='coordinator_address'):
    parallel.distributed_args('off', '', 2, 0)


@pytest.mark.slow
@pytest.mark.parametrize('flags,fragment', [
    (['--num_processes=2', '--process_id=0'], 'need --coordinator_address'),
    (['--coordinator_address=localhost:1', '--num_processes=2'], 'process_id'),
])
def test_bad_distributed_flags_are_one_line_errors(tmp_path, flags, fragment):
  proc = subprocess.run(
      [sys.executable, '-m', 'darts_jax.main', '--config=experiments/search_tiny.py',
       f'--workdir={tmp_path}', *flags], cwd=ROOT, env=env_with_devices(1),
      capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert fragment in proc.stderr.strip().splitlines()[-1]


# --- bfloat16 compute.


@pytest.mark.slow
def test_bfloat16_loss_and_gradients_are_finite_close_and_float32():
  config = configs.search_tiny_config()
  info = data.get_info('digits')
  parts = train_parts.SearchParts.from_config(config, info.num_classes)
  model, state = parts.model, parts.init_state(info.image_shape)
  weights = lambda alphas: parts.method.edge_weights(alphas, Forward.VALIDATION, None, 0)
  rng = np.random.default_rng(0)
  batch = steps.preprocess(jax.random.key(0), {
      'image': rng.integers(0, 256, (16,) + info.image_shape, dtype=np.uint8),
      'label': rng.integers(0, 10, 16).astype(np.int32)}, info, crop_padding=0)
  results = {}
  for dtype in (jnp.float32, jnp.bfloat16):
    loss_fn = steps.make_loss_fn(model, state['batch_stats'], dtype, weights)
    grad_fn = jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True))
    results[dtype] = grad_fn(state['params'], state['alphas'], batch)
  (loss32, (_, stats32)), grads32 = results[jnp.float32]
  (loss16, (_, stats16)), grads16 = results[jnp.bfloat16]
  assert np.isfinite(loss16) and loss16.dtype == jnp.float32
  np.testing.assert_allclose(loss16, loss32, rtol=0.02)
  # Gradients reach the float32 weights and alphas through the cast, in float32.
  for g16, g32 in zip(jax.tree.leaves(grads16), jax.tree.leaves(grads32)):
    assert g16.dtype == g32.dtype == jnp.float32 and np.all(np.isfinite(g16))
  flat16, flat32 = (np.concatenate([np.ravel(g) for g in jax.tree.leaves(g)])
                    for g in (grads16, grads32))
  cosine = flat16 @ flat32 / (np.linalg.norm(flat16) * np.linalg.norm(flat32))
  assert cosine > 0.95, cosine
  for a, b in zip(jax.tree.leaves(stats16), jax.tree.leaves(stats32)):
    assert a.dtype == b.dtype == jnp.float32


def test_bfloat16_is_checked():
  config = configs.search_tiny_config()
  config.model.compute_dtype = 'float16'
  with pytest.raises(UserError, match='compute_dtype'):
    train_parts.check_config(config, data.get_info('digits'), num_devices=1, process_count=1)

"""Populations (config.seeds): N searches in one program, results with spread."""

import json
import os
import signal
import subprocess
import sys
import time

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from darts_jax import configs
from darts_jax import spaces
from darts_jax.errors import UserError
from darts_jax.runtime import preemption
from darts_jax.spaces.darts.genotype_text import parse_genotype
from darts_jax.train import population
from darts_jax.train import search
from darts_jax.train import spread

ROOT = os.path.join(os.path.dirname(__file__), '..')
SEEDS = (0, 1, 2)


def tiny(seeds=SEEDS):
  config = configs.search_tiny_config()
  config.seeds = seeds
  config.checkpoint_every_steps = 0
  return config


# ---------------------------------------------------------------------------
# The maths of the spread (fast).


def test_mean_std_and_the_paired_test_match_scipy():
  a, b = [0.91, 0.93, 0.92, 0.95], [0.90, 0.90, 0.93, 0.91]
  mean, std = spread.mean_std(a)
  assert mean == pytest.approx(np.mean(a)) and std == pytest.approx(np.std(a, ddof=1))
  assert spread.mean_std([0.5]) == (0.5, 0.0)
  test = spread.paired_test(a, b)
  want = stats.ttest_rel(a, b)
  assert test['p_value'] == pytest.approx(want.pvalue) and test['t'] == pytest.approx(
      want.statistic)
  assert (test['n'], test['searched_better'], test['random_better']) == (4, 3, 1)
  assert test['mean_difference'] == pytest.approx(np.mean(np.subtract(a, b)))
  assert spread.verdict(test).startswith('no significant difference')
  clear = spread.paired_test([0.9, 0.8, 0.7, 0.6], [0.5, 0.41, 0.29, 0.2])
  assert spread.verdict(clear).startswith('searched cells beat random ones')
  assert spread.paired_test([0.9], [0.8])['p_value'] is None
  assert 'no test possible' in spread.verdict(spread.paired_test([0.9], [0.8]))


def test_agreement_counts_common_edges_and_ops():
  space = spaces.get('darts')
  a = parse_genotype("Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1)], "
                     "normal_concat=[2], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], "
                     "reduce_concat=[2])")
  b = parse_genotype("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)], "
                     "normal_concat=[2], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], "
                     "reduce_concat=[2])")
  agree = spread.agreement(space, [a, b])
  assert agree['normal'] == {'edges_per_cell': 2.0, 'edges_in_every_seed': 2,
                             'edges_and_ops_in_every_seed': 1,
                             'mean_pairwise_op_agreement': pytest.approx(1 / 3)}
  assert agree['reduce']['edges_and_ops_in_every_seed'] == 2
  assert agree['reduce']['mean_pairwise_op_agreement'] == 1.0


def test_mean_line_averages_the_seeds():
  line = spread.mean_line([{'val_acc': 0.5, 'lr': 0.1}, {'val_acc': 0.7, 'lr': 0.1}])
  assert line == {'val_acc': pytest.approx(0.6), 'lr': pytest.approx(0.1),
                  'val_acc_std': pytest.approx(np.std([0.5, 0.7], ddof=1))}


def test_bad_seeds_are_clear():
  for bad in ((0, 0), (-1,), (0.5,)):
    with pytest.raises(UserError, match='config.seeds must be distinct integers >= 0'):
      population.check_seeds(bad, 1)
  with pytest.raises(UserError, match='runs in one process'):
    population.check_seeds((0, 1), 2)


def test_the_nan_guard_names_the_seed(tmp_path):
  guard = preemption.StepGuard(str(tmp_path), steps_per_epoch=5, every_steps=0, keep=1,
                               stop_request=preemption.StopRequest(), hint='lower the lr',
                               seeds=(3, 7, 11))
  guard.add(1, jnp.array([True, True, True]))
  guard.add(2, jnp.array([True, False, False]))
  with pytest.raises(UserError, match=r'at step 2 \(epoch 1\) of seed 7, 11; stopped without'):
    guard.check_finite()


def test_epoch_metrics_keep_one_value_per_seed():
  metrics = preemption.EpochMetrics()
  metrics.append({'loss': jnp.array([1.0, 3.0]), 'finite': jnp.array([True, True])})
  metrics.append({'loss': jnp.array([2.0, 5.0]), 'finite': jnp.array([True, True])})
  host = metrics.host()
  assert host == [{'loss': [1.0, 3.0]}, {'loss': [2.0, 5.0]}]
  np.testing.assert_allclose(preemption.EpochMetrics.mean(host, 'loss'), [1.5, 4.0])
  json.dumps(host)  # What a mid-epoch checkpoint's meta records.


# ---------------------------------------------------------------------------
# Populations end to end (slow).


@pytest.fixture(scope='module')
def population_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('population'))
  return workdir, search.search(tiny(), workdir)


@pytest.mark.slow
def test_each_seed_is_its_single_seed_search(population_run, tmp_path):
  workdir, summary = population_run
  assert summary['seeds'] == list(SEEDS) and len(summary['genotypes']) == 3
  for i, seed in enumerate(SEEDS):
    config = configs.search_tiny_config()
    config.seed, config.checkpoint_every_steps = seed, 0
    single = search.search(config, str(tmp_path / f'single_{seed}'))
    assert summary['genotypes'][i] == single['genotype']
    assert summary['per_seed'][i]['val_acc'] == pytest.approx(single['val_acc'], abs=1e-6)
    got = np.load(os.path.join(workdir, f'seed_{seed}', 'alphas.npz'))
    want = np.load(tmp_path / f'single_{seed}' / 'alphas.npz')
    for cell in ('normal', 'reduce'):
      np.testing.assert_allclose(got[cell], want[cell], rtol=0, atol=1e-6)
  # The seeds searched differently (own init and data order).
  assert len(set(summary['genotypes'])) > 1


@pytest.mark.slow
def test_a_population_workdir_holds_every_seeds_search(population_run):
  workdir, summary = population_run
  on_disk = json.load(open(os.path.join(workdir, 'result.json')))
  assert on_disk == json.loads(json.dumps(summary))
  assert 0 <= on_disk['val_acc_mean'] <= 1 and on_disk['val_acc_std'] >= 0
  assert set(on_disk['agreement']) == {'normal', 'reduce'}
  lines = [json.loads(l) for l in open(os.path.join(workdir, 'metrics.jsonl'))]
  assert [l['epoch'] for l in lines] == [1, 2] and 'val_acc_std' in lines[-1]
  for seed in SEEDS:
    d = os.path.join(workdir, f'seed_{seed}')
    seed_lines = [json.loads(l) for l in open(os.path.join(d, 'metrics.jsonl'))]
    assert [l['epoch'] for l in seed_lines] == [1, 2]
    assert json.load(open(os.path.join(d, 'config.json')))['seed'] == seed
    for name in ('genotype.json', 'alphas/epoch_002.npz', 'plots/latest_normal.png',
                 'report.html', 'result.json', 'tensorboard'):
      assert os.path.exists(os.path.join(d, name)), name
  page = open(os.path.join(workdir, 'report.html'), encoding='utf-8').read()
  assert 'population report' in page and 'seed_2/report.html' in page


@pytest.mark.slow
def test_a_seeds_search_does_not_depend_on_the_others(tmp_path):
  """With one data order for all (config.shared_data_order), seed 3's search is the same
  whichever seeds search beside it."""
  results = {}
  for seeds in ((3, 4), (3, 5)):
    config = tiny(seeds)
    config.shared_data_order = True
    search.search(config, str(tmp_path / str(seeds[1])))
    results[seeds] = np.load(tmp_path / str(seeds[1]) / 'seed_3' / 'alphas.npz')['normal']
  np.testing.assert_allclose(results[(3, 4)], results[(3, 5)], rtol=0, atol=1e-6)


def _command(workdir):
  return [sys.executable, '-m', 'darts_jax.main', '--config=experiments/search_tiny.py',
          f'--workdir={workdir}', '--config.seeds=(0, 1, 2)', '--compilation_cache=']


@pytest.mark.slow
def test_a_killed_population_resumes_bitwise(population_run, tmp_path):
  """SIGKILL after the first checkpoint (one per step), rerun: the alphas of every seed
  end bitwise those of the uninterrupted population (which checkpointed at epoch ends)."""
  workdir = str(tmp_path / 'run')
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  proc = subprocess.Popen(_command(workdir), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  checkpoints = os.path.join(workdir, 'checkpoints')
  deadline = time.monotonic() + 600
  while time.monotonic() < deadline and proc.poll() is None:
    if os.path.isdir(checkpoints) and any(n.isdigit() for n in os.listdir(checkpoints)):
      break
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  done = subprocess.run(_command(workdir), cwd=ROOT, env=env, capture_output=True, text=True,
                        check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  assert 'resuming from the checkpoint of step' in done.stdout
  reference, _ = population_run
  for seed in SEEDS:
    got = np.load(os.path.join(workdir, f'seed_{seed}', 'alphas.npz'))
    want = np.load(os.path.join(reference, f'seed_{seed}', 'alphas.npz'))
    for cell in ('normal', 'reduce'):
      np.testing.assert_array_equal(got[cell], want[cell])
    lines = open(os.path.join(workdir, f'seed_{seed}', 'genotypes.jsonl')).readlines()
    assert len(lines) == 2  # Not repeated by the resume.


@pytest.mark.slow
def test_seeds_by_data_devices_give_the_one_device_population(population_run, tmp_path):
  """4 seeds on 8 fake devices: a 4 x 2 (seed, data) mesh; the same population."""
  env = dict(os.environ, JAX_PLATFORMS='cpu',
             XLA_FLAGS='--xla_force_host_platform_device_count=8')
  seeds = '(0, 1, 2, 3)'
  one, eight = str(tmp_path / 'one'), str(tmp_path / 'eight')
  for workdir, run_env in ((one, dict(os.environ, JAX_PLATFORMS='cpu')), (eight, env)):
    proc = subprocess.run(
        [sys.executable, '-m', 'darts_jax.main', '--config=experiments/search_tiny.py',
         f'--workdir={workdir}', f'--config.seeds={seeds}', '--config.checkpoint_every_steps=0',
         '--compilation_cache='], cwd=ROOT, env=run_env, capture_output=True, text=True,
        check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
  for seed in range(4):
    a = np.load(os.path.join(one, f'seed_{seed}', 'alphas.npz'))
    b = np.load(os.path.join(eight, f'seed_{seed}', 'alphas.npz'))
    np.testing.assert_allclose(a['normal'], b['normal'], rtol=0, atol=1e-5)
  assert json.load(open(os.path.join(one, 'result.json')))['genotypes'] == json.load(
      open(os.path.join(eight, 'result.json')))['genotypes']

"""One real search end to end on the tiny config: outputs, split hygiene, determinism, resume."""

import json
import os
import tarfile

import numpy as np
import pytest

from darts_jax import configs
from darts_jax import data
from darts_jax.errors import UserError
from darts_jax.spaces.darts import zoo
from darts_jax.spaces.darts.genotype_text import genotype_to_text
from darts_jax.train import parts as train_parts
from darts_jax.train import search


@pytest.fixture(scope='module')
def first_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('run_a'))
  splits = []
  real_load = data.load_split

  def recording_load(dataset_config, split, *args, **kwargs):
    splits.append(split)
    return real_load(dataset_config, split, *args, **kwargs)

  data.load_split = recording_load
  try:
    result = search.search(configs.search_tiny_config(), workdir)
  finally:
    data.load_split = real_load
  return workdir, result, splits


@pytest.mark.slow
def test_outputs(first_run):
  workdir, result, _ = first_run
  for name in ('config.json', 'metrics.jsonl', 'genotypes.jsonl', 'genotype.json',
               'genotype.txt', 'alphas.npz', 'alphas/epoch_001.npz', 'alphas/epoch_002.npz'):
    assert os.path.exists(os.path.join(workdir, name)), name
  lines = [json.loads(l) for l in open(os.path.join(workdir, 'metrics.jsonl'))]
  assert [l['epoch'] for l in lines] == [1, 2]
  for key in ('train_loss', 'train_acc', 'val_loss', 'val_acc', 'lr', 'alpha_entropy_normal',
              'step_seconds'):
    assert np.isfinite(lines[-1][key]), key
  g = zoo.load_genotype(workdir)
  assert genotype_to_text(g) == result['genotype']
  ops = {op for op, _ in g.normal + g.reduce}
  assert 'none' not in ops
  assert ops <= set(configs.search_tiny_config().search_space.primitives)
  alphas = np.load(os.path.join(workdir, 'alphas.npz'))
  assert alphas['normal'].shape == (14, 4)
  # The alphas moved during the second epoch (3 Adam steps of lr 3e-4 each).
  epochs = [np.load(os.path.join(workdir, f'alphas/epoch_00{e}.npz')) for e in (1, 2)]
  for cell in ('normal', 'reduce'):
    assert np.max(np.abs(epochs[1][cell] - epochs[0][cell])) > 1e-4, cell
  np.testing.assert_array_equal(alphas['normal'], epochs[1]['normal'])


@pytest.mark.slow
def test_search_reads_only_the_train_split(first_run):
  _, _, splits = first_run
  assert splits and set(splits) == {'train'}


@pytest.mark.slow
def test_same_seed_is_bitwise_reproducible_and_resume_matches(first_run, tmp_path):
  workdir_a, _, _ = first_run
  config = configs.search_tiny_config()
  # Stop after epoch 1 (same schedule as the full run), then resume to epoch 2.
  workdir_b = str(tmp_path / 'run_b')
  partial = configs.search_tiny_config()
  with partial.unlocked():
    partial.max_epochs_this_run = 1
  search.search(partial, workdir_b)
  assert len(open(os.path.join(workdir_b, 'metrics.jsonl')).readlines()) == 1
  search.search(config, workdir_b)
  a = np.load(os.path.join(workdir_a, 'alphas.npz'))
  b = np.load(os.path.join(workdir_b, 'alphas.npz'))
  np.testing.assert_array_equal(a['normal'], b['normal'])
  np.testing.assert_array_equal(a['reduce'], b['reduce'])


def test_batch_not_divisible_across_devices_is_clear():
  config = configs.search_tiny_config()
  config.train.batch_size = 15
  with pytest.raises(UserError, match='divide'):
    train_parts.check_config(config, data.get_info('digits'), num_devices=2, process_count=1)


def test_unknown_dataset_is_clear(tmp_path):
  config = configs.search_tiny_config()
  config.dataset.name = 'cifar11'
  with pytest.raises(UserError, match='cifar11'):
    search.search(config, str(tmp_path))


def test_init_state_also_traces_inside_eval_shape():
  """The init is jitted with the trainer's compiler options, which XLA takes only on a
  top-level jit; under `jax.eval_shape` (a restore template, the benchmark's floor case)
  it is traced as a plain nested jit, to the shapes of the real init."""
  import jax  # pylint: disable=g-import-not-at-top
  config = configs.search_tiny_config()
  info = data.get_info(config.dataset.name)
  parts = train_parts.SearchParts.from_config(config, info.num_classes)
  shapes = jax.eval_shape(lambda: parts.init_state(info.image_shape))
  state = parts.init_state(info.image_shape)
  assert jax.tree.structure(shapes) == jax.tree.structure(state)
  for spec, value in zip(jax.tree.leaves(shapes), jax.tree.leaves(state)):
    assert (spec.shape, spec.dtype) == (value.shape, value.dtype)


@pytest.mark.slow
def test_a_workdir_written_before_the_package_layout_resumes_bitwise(tmp_path):
  """tests/data/pre_layout_search_workdir.tar.gz: the tiny search stopped after its first
  epoch by the flat-package code (commit 588ea80, before darts_jax's subpackages), with its
  checkpoint, metrics and genotype lines, and that code's uninterrupted run's alphas."""
  archive = os.path.join(os.path.dirname(__file__), 'data', 'pre_layout_search_workdir.tar.gz')
  with tarfile.open(archive) as tar:
    tar.extractall(tmp_path, filter='data')
  search.search(configs.search_tiny_config(), str(tmp_path / 'run'))
  resumed = np.load(tmp_path / 'run' / 'alphas.npz')
  expected = np.load(tmp_path / 'expected_alphas.npz')
  for cell in ('normal', 'reduce'):
    np.testing.assert_array_equal(resumed[cell], expected[cell])
  lines = [json.loads(l) for l in open(tmp_path / 'run' / 'metrics.jsonl')]
  assert [l['epoch'] for l in lines] == [1, 2]

"""One real search end to end on the tiny config: outputs, split hygiene, determinism, resume."""

import json
import os
import sys

import numpy as np
import pytest

from darts_jax import data
from darts_jax import genotypes
from darts_jax import search
from darts_jax.errors import UserError

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'experiments'))
import search_tiny  # pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.fixture(scope='module')
def first_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('run_a'))
  splits = []
  real_load = data.load_source

  def recording_load(name, split, *args, **kwargs):
    splits.append(split)
    return real_load(name, split, *args, **kwargs)

  data.load_source = recording_load
  try:
    result = search.search(search_tiny.get_config(), workdir)
  finally:
    data.load_source = real_load
  return workdir, result, splits


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
  g = genotypes.load_genotype(workdir)
  assert genotypes.genotype_to_text(g) == result['genotype']
  ops = {op for op, _ in g.normal + g.reduce}
  assert 'none' not in ops
  assert ops <= set(search_tiny.get_config().search_space.primitives)
  alphas = np.load(os.path.join(workdir, 'alphas.npz'))
  assert alphas['normal'].shape == (14, 4)
  # The alphas moved during the second epoch (3 Adam steps of lr 3e-4 each).
  epochs = [np.load(os.path.join(workdir, f'alphas/epoch_00{e}.npz')) for e in (1, 2)]
  for cell in ('normal', 'reduce'):
    assert np.max(np.abs(epochs[1][cell] - epochs[0][cell])) > 1e-4, cell
  np.testing.assert_array_equal(alphas['normal'], epochs[1]['normal'])


def test_search_reads_only_the_train_split(first_run):
  _, _, splits = first_run
  assert splits and set(splits) == {'train'}


def test_same_seed_is_bitwise_reproducible_and_resume_matches(first_run, tmp_path):
  workdir_a, _, _ = first_run
  config = search_tiny.get_config()
  # Stop after epoch 1 (same schedule as the full run), then resume to epoch 2.
  workdir_b = str(tmp_path / 'run_b')
  partial = search_tiny.get_config()
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
  config = search_tiny.get_config()
  config.train.batch_size = 15
  with pytest.raises(UserError, match='divide'):
    search.check_config(config, data.get_info('digits'), num_devices=2, process_count=1)


def test_unknown_dataset_is_clear(tmp_path):
  config = search_tiny.get_config()
  config.dataset.name = 'cifar11'
  with pytest.raises(UserError, match='cifar11'):
    search.search(config, str(tmp_path))


def test_init_state_also_traces_inside_eval_shape():
  """The init is jitted with the trainer's compiler options, which XLA takes only on a
  top-level jit; under `jax.eval_shape` (a restore template, the benchmark's floor case)
  it is traced as a plain nested jit, to the shapes of the real init."""
  import jax  # pylint: disable=g-import-not-at-top
  config = search_tiny.get_config()
  info = data.get_info(config.dataset.name)
  model = search.build_model(config, info.num_classes)
  shapes = jax.eval_shape(lambda: search.init_state(model, config, info))
  state = search.init_state(model, config, info)
  assert jax.tree.structure(shapes) == jax.tree.structure(state)
  for spec, value in zip(jax.tree.leaves(shapes), jax.tree.leaves(state)):
    assert (spec.shape, spec.dtype) == (value.shape, value.dtype)

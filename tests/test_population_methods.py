"""Populations of every method in every space, and the population pipeline (slow)."""

import json
import os

import pytest

from darts_jax import configs
from darts_jax import spaces
from darts_jax.configs import benchmarks
from darts_jax.train import pipeline
from darts_jax.train import search


def tiny(seeds):
  config = configs.search_tiny_config()
  config.seeds = seeds
  config.checkpoint_every_steps = 0
  return config


@pytest.mark.slow
@pytest.mark.parametrize('method', ['gdas', 'pc_darts', 'drnas', 'random_ws'])
@pytest.mark.parametrize('space', ['darts', 'nb201'])
def test_every_method_and_space_searches_as_a_population(method, space, tmp_path):
  config = (benchmarks.search_cifar10 if space == 'darts' else benchmarks.search_nb201)(
      method + ',tiny')
  config.seeds = (0, 1)
  summary = search.search(config, str(tmp_path))
  searched = spaces.from_config(config)
  for text in summary['genotypes']:
    searched.parse_searched(text)
  assert summary['method'] == method
  if method == 'random_ws':
    assert all(r['num_candidates'] == 3 for r in summary['per_seed'])


@pytest.mark.slow
def test_a_population_pipeline_compares_searched_and_random_cells(tmp_path):
  augment = configs.augment_digits_config()
  augment.model.init_channels, augment.model.layers = 4, 2
  augment.train.batch_size, augment.train.epochs = 16, 1
  augment.max_steps_per_epoch, augment.checkpoint_every_steps = 2, 0
  printed = pipeline.run_pipeline(configs.pipeline_config(tiny((0, 1)), augment),
                                  str(tmp_path))
  result = json.load(open(tmp_path / 'result.json'))
  assert [r['seed'] for r in result['per_seed']] == [0, 1]
  for r in result['per_seed']:
    assert 0 <= r['test_acc'] <= 1 and 0 <= r['random_test_acc'] <= 1
    assert os.path.exists(tmp_path / 'augment' / f'seed_{r["seed"]}' / 'result.json')
    assert os.path.exists(tmp_path / 'random' / f'seed_{r["seed"]}' / 'result.json')
  test = result['searched_vs_random']
  assert test['n'] == 2 and 'p_value' in test
  assert printed['verdict'] == result['verdict'] and '+-' in printed['test_acc']
  assert 'seed' in printed['table'] and printed['table'].count('\n') == 3
  page = open(tmp_path / 'report.html', encoding='utf-8').read()
  assert 'Distributions' in page and result['verdict'] in page

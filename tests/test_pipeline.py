"""The chained pipeline: search, derived cell and random cell trained from scratch."""

import json
import os

import pytest

from darts_jax import configs
from darts_jax import spaces
from darts_jax.configs import benchmarks
from darts_jax.spaces.darts import genotype as genotypes
from darts_jax.spaces.darts.genotype_text import parse_genotype
from darts_jax.spaces.nb201 import arch as nb201
from darts_jax.train import pipeline


def test_random_genotype_is_valid_and_seeded():
  prims = genotypes.PRIMITIVES
  space = spaces.from_config(configs.search_config())
  a = space.random_arch(seed=3)
  assert a == space.random_arch(seed=3)
  assert a != space.random_arch(seed=4)
  genotypes.validate_genotype(a, known_ops=prims)
  for cell in (a.normal, a.reduce):
    assert all(op != 'none' for op, _ in cell)
    for node in range(4):
      inputs = [src for _, src in cell[2 * node:2 * node + 2]]
      assert len(set(inputs)) == 2 and max(inputs) < node + 2


@pytest.mark.slow
def test_tiny_pipeline_end_to_end(tmp_path):
  augment = configs.augment_digits_config()
  augment.model.init_channels = 4
  augment.model.layers = 2
  augment.train.batch_size = 16
  augment.train.epochs = 1
  augment.max_steps_per_epoch = 2
  config = configs.pipeline_config(configs.search_tiny_config(), augment)
  result = pipeline.run_pipeline(config, str(tmp_path))
  on_disk = json.load(open(tmp_path / 'result.json'))
  assert on_disk['genotype'] == result['genotype']
  for key in ('test_acc', 'random_test_acc', 'search_val_acc'):
    assert 0.0 <= on_disk[key] <= 1.0
  assert parse_genotype(on_disk['random_genotype'])
  for sub in ('search', 'augment', 'random'):
    assert os.path.exists(tmp_path / sub / 'config.json')
  assert os.path.exists(tmp_path / 'report.html')


@pytest.mark.slow
def test_tiny_nb201_pipeline_trains_the_derived_and_a_random_cell(tmp_path):
  config = benchmarks.pipeline_nb201('gdas,tiny')
  result = pipeline.run_pipeline(config, str(tmp_path))
  on_disk = json.load(open(tmp_path / 'result.json'))
  assert on_disk['genotype'] == result['genotype']
  derived = nb201.parse_arch(on_disk['genotype'])
  assert nb201.load_arch(str(tmp_path / 'search')) == derived
  assert nb201.parse_arch(on_disk['random_genotype'])
  for run in ('augment', 'random'):
    trained = json.load(open(tmp_path / run / 'result.json'))
    assert 0.0 <= trained['test_acc'] <= 1.0 and trained['params'] > 0
  assert json.load(open(tmp_path / 'augment' / 'result.json'))['genotype'] == on_disk['genotype']
  page = open(tmp_path / 'report.html', encoding='utf-8').read()
  assert on_disk['genotype'] in page and 'failed' not in page

"""Search, then train the derived architecture from scratch next to a random one of the space.

Works in every space: the search config's space derives the architecture, draws the
random baseline and tells the evaluation which network to build.
"""

import os

import jax
import ml_collections

from darts_jax import spaces
from darts_jax.runtime import checkpoint
from darts_jax.train import augment
from darts_jax.train import outputs
from darts_jax.train import search
from darts_jax.train import spread


def _train(config: ml_collections.ConfigDict, space, arch, workdir: str,
           seed: int | None = None) -> dict:
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.genotype = space.to_text(arch)
    config.search_space = ml_collections.ConfigDict({'name': space.name})
    if seed is not None:
      config.seed = seed
  return augment.train_and_evaluate(config, workdir)


def run_pipeline(config: ml_collections.ConfigDict, workdir: str) -> dict:
  is_main = jax.process_index() == 0  # Only process 0 writes files.
  checkpoint.prepare_workdir(workdir, config, mode='pipeline', write=is_main)
  space = spaces.from_config(config.search)
  search_result = search.search(config.search, os.path.join(workdir, 'search'))
  if search_result.get('preempted'):
    return search_result
  if config.search.get('seeds', ()):
    return _population_pipeline(config, workdir, space, search_result)
  # From the result, not the file process 0 may still be writing.
  derived = space.parse_searched(search_result['genotype'])
  result = {'genotype': space.to_text(derived), 'search_val_acc': search_result['val_acc']}
  derived_result = _train(config.augment, space, derived, os.path.join(workdir, 'augment'))
  if derived_result.get('preempted'):
    return derived_result
  result['test_acc'] = derived_result['test_acc']
  result['params'] = derived_result['params']
  if config.random_baseline:
    random_arch = space.random_arch(config.seed)
    random_result = _train(config.augment, space, random_arch, os.path.join(workdir, 'random'))
    if random_result.get('preempted'):
      return random_result
    result['random_genotype'] = space.to_text(random_arch)
    result['random_test_acc'] = random_result['test_acc']
    result['random_params'] = random_result['params']
  if is_main:
    checkpoint.write_json(os.path.join(workdir, 'result.json'), result)
    outputs.write_report(workdir)
  return result


def _population_pipeline(config, workdir: str, space, search_result: dict) -> dict:
  """Every seed's derived cell and as many random cells (random_arch of the same seeds)
  trained from scratch with that seed; the comparison as the papers report it."""
  rows = []
  for entry in search_result['per_seed']:
    seed = entry['seed']
    derived = space.parse_searched(entry['genotype'])
    row = {'seed': seed, 'genotype': entry['genotype'], 'search_val_acc': entry['val_acc']}
    trained = _train(config.augment, space, derived,
                     os.path.join(workdir, 'augment', f'seed_{seed}'), seed)
    if trained.get('preempted'):
      return trained
    row.update(test_acc=trained['test_acc'], params=trained['params'])
    if config.random_baseline:
      random_arch = space.random_arch(seed)
      trained = _train(config.augment, space, random_arch,
                       os.path.join(workdir, 'random', f'seed_{seed}'), seed)
      if trained.get('preempted'):
        return trained
      row.update(random_genotype=space.to_text(random_arch),
                 random_test_acc=trained['test_acc'], random_params=trained['params'])
    rows.append(row)
  result = spread.pipeline_summary(rows, search_result['agreement'])
  checkpoint.write_json(os.path.join(workdir, 'result.json'), result)
  outputs.write_report(workdir)
  return spread.printable(result)

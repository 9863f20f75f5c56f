"""Search, then train the derived cell from scratch next to a random cell of the same space.

Works in both search spaces: a DARTS genotype or a NAS-Bench-201 cell (arch string).
"""

import os

import jax
import ml_collections
import numpy as np

from darts_jax import augment
from darts_jax import checkpoint
from darts_jax import genotypes
from darts_jax import methods
from darts_jax import search


def random_genotype(primitives, steps: int, multiplier: int, seed: int) -> genotypes.Genotype:
  """A uniformly random cell: per node 2 distinct inputs, each with a random non-'none' op."""
  ops = [p for p in primitives if p != 'none']
  rng = np.random.default_rng(seed)

  def cell():
    pairs = []
    for node in range(steps):
      for src in sorted(rng.choice(node + 2, size=2, replace=False)):
        pairs.append((ops[rng.integers(len(ops))], int(src)))
    return tuple(pairs)

  concat = tuple(range(2 + steps - multiplier, steps + 2))
  return genotypes.validate_genotype(genotypes.Genotype(cell(), concat, cell(), concat))


def _train(config: ml_collections.ConfigDict, arch, workdir: str) -> dict:
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.genotype = methods.arch_text(arch)
  return augment.train_and_evaluate(config, workdir)


def run_pipeline(config: ml_collections.ConfigDict, workdir: str) -> dict:
  is_main = jax.process_index() == 0  # Only process 0 writes files.
  checkpoint.prepare_workdir(workdir, config, mode='pipeline', write=is_main)
  search_dir = os.path.join(workdir, 'search')
  search_result = search.search(config.search, search_dir)
  if search_result.get('preempted'):
    return search_result
  # From the result, not the file process 0 may still be writing.
  derived = methods.parse_arch_text(config.search, search_result['genotype'])
  result = {'genotype': methods.arch_text(derived),
            'search_val_acc': search_result['val_acc']}
  derived_result = _train(config.augment, derived, os.path.join(workdir, 'augment'))
  if derived_result.get('preempted'):
    return derived_result
  result['test_acc'] = derived_result['test_acc']
  result['params'] = derived_result['params']
  if config.random_baseline:
    random_cell = methods.random_architecture(config.search, config.seed)
    random_result = _train(config.augment, random_cell, os.path.join(workdir, 'random'))
    if random_result.get('preempted'):
      return random_result
    result['random_genotype'] = methods.arch_text(random_cell)
    result['random_test_acc'] = random_result['test_acc']
    result['random_params'] = random_result['params']
  if is_main:
    checkpoint.write_json(os.path.join(workdir, 'result.json'), result)
    from darts_jax import report  # pylint: disable=g-import-not-at-top
    report.write_report_or_warn(workdir)
  return result

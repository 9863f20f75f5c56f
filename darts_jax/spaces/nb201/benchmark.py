"""NAS-Bench-201's tabular benchmark: the test accuracy of a derived cell, when available.

Needs `nas_201_api` (NAS-Bench-201) or `nats_bench` (NATS-Bench topology) and the
benchmark file (config.search_space.benchmark_path); both are checked before a search
starts, and a look-up that cannot run says why in the result.
"""

from __future__ import annotations

import importlib.util
import os
import sys

from absl import logging

from darts_jax.errors import UserError
from darts_jax.spaces.nb201.arch import Arch, arch_to_string

BENCHMARK_DATASETS = ('cifar10', 'cifar10-valid', 'cifar100', 'ImageNet16-120')
BENCHMARK_PACKAGES = {'nas_201_api': 'nas-bench-201', 'nats_bench': 'nats_bench'}


def _importable(module: str) -> bool:
  try:
    return importlib.util.find_spec(module) is not None
  except (ImportError, ValueError):  # ValueError: in sys.modules without a spec.
    return module in sys.modules


def check_benchmark_settings(path: str, dataset: str) -> None:
  """At start: a benchmark look-up that is asked for can run at the end of the search."""
  if dataset not in BENCHMARK_DATASETS:
    raise UserError(f'unknown config.search_space.benchmark_dataset {dataset!r}; use one of '
                    f'{BENCHMARK_DATASETS}')
  if not path:
    return
  if not os.path.isfile(path):
    raise UserError(f'config.search_space.benchmark_path {path} is not a file; give the '
                    "NAS-Bench-201 file's path, or '' to skip the look-up")
  if not any(_importable(module) for module in BENCHMARK_PACKAGES):
    installs = ' or '.join(f'pip install {p}' for p in BENCHMARK_PACKAGES.values())
    raise UserError(f'config.search_space.benchmark_path is set but no benchmark API is '
                    f"installed: {installs}, or set benchmark_path '' to skip the look-up")


def benchmark_accuracy(arch: Arch, path: str, dataset: str = 'cifar10') -> dict:
  """The tabulated accuracy of `arch` when a benchmark API and file are available.

  `path`: a NAS-Bench-201 (nas_201_api) or NATS-Bench topology (nats_bench) file
  (config.search_space.benchmark_path); `dataset`: config.search_space.benchmark_dataset.
  Returns {'benchmark_test_acc': %, ...}, or {'benchmark': 'skipped: why'}.
  """
  text = arch_to_string(arch)

  def skipped(why):
    logging.info('NAS-Bench-201 benchmark look-up skipped: %s', why)
    return {'benchmark': f'skipped: {why}'}

  if not path:
    return skipped('no config.search_space.benchmark_path')
  if not os.path.exists(path):
    return skipped(f'benchmark file {path} does not exist')
  api = None
  try:
    from nas_201_api import NASBench201API  # pylint: disable=g-import-not-at-top
    api = NASBench201API(path, verbose=False)
  except ImportError:
    try:
      import nats_bench  # pylint: disable=g-import-not-at-top
      api = nats_bench.create(path, 'tss', fast_mode=True, verbose=False)
    except ImportError:
      return skipped('neither nas_201_api nor nats_bench is installed')
  try:
    index = api.query_index_by_arch(text)
    info = api.get_more_info(index, dataset, hp='200', is_random=False)
  except Exception as e:  # pylint: disable=broad-except
    return skipped(f'the benchmark API failed on {text}: {e}')
  result = {'benchmark_index': int(index), 'benchmark_dataset': dataset,
            'benchmark_test_acc': float(info['test-accuracy'])}
  logging.info('NAS-Bench-201 %s test accuracy of %s: %.2f%%', dataset, text,
               result['benchmark_test_acc'])
  return result

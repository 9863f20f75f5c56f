"""NAS-Bench-201 end to end: search with a method, train the derived cell and a random cell.

Commands:
  python -m darts_jax.main --config=experiments/pipeline_nb201.py:gdas --workdir=/tmp/nb201_gdas
  python -m darts_jax.main --config=experiments/pipeline_nb201.py:drnas,tiny --workdir=/tmp/nb201_t

The argument is a registered method (darts_jax/methods/: darts, gdas, pc_darts, drnas, random_ws),
optionally followed by ",tiny" (digits, C=4, a few steps per stage: a smoke run of ~1-2
minutes on a 2-core CPU, mostly compilation). Stages as in experiments/pipeline_digits.py:
search/ (experiments/search_nb201.py:<method>), augment/ (the derived arch string trained
from scratch with NAS-Bench-201's 200-epoch recipe, experiments/augment_nb201.py) and
random/ (a uniformly random NAS-Bench-201 cell, same training). If
config.search.search_space.benchmark_path names a NAS-Bench-201 / NATS-Bench file, the
search result also carries the benchmark's accuracy of the derived cell.
Expected on CIFAR-10 (published test accuracies, from ../shared/reference/darts_facts.md;
not run here): DARTS collapses to 54.30 %, GDAS 93.61 %, the space's best cell 94.37 %.
"""

import ml_collections

from darts_jax.configs import benchmarks


def get_config(arg: str = 'darts') -> ml_collections.ConfigDict:
  return benchmarks.pipeline_nb201(arg)

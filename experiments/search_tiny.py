"""A tiny search for tests and smoke runs: seconds on a 2-core CPU.

Command:
  python -m darts_jax.main --config=experiments/search_tiny.py --workdir=/tmp/darts_tiny

Digits, a 2-cell supernet (normal, reduce) with 3 ops, C=4, 2 epochs of 3
steps at batch 16. Expected: finishes in well under a minute including
compile and derives a genotype; accuracy is not meaningful.
"""

import ml_collections

from darts_jax import configs


def get_config(arg: str = 'first') -> ml_collections.ConfigDict:
  return configs.search_tiny_config(arg)

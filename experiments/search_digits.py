"""The embedded default: a DARTS search on scikit-learn's 8x8 digits (no download).

Command:
  python -m darts_jax.main --config=experiments/search_digits.py --workdir=/tmp/darts_digits

The 1437 training digits are split 718/719 into search-train and search-val.
A 2-cell supernet (a normal and a reduction cell) with all 8 DARTS ops, C=8,
searches first order for 20 epochs at batch 64 (11 steps per epoch), alpha lr 6e-3.
Expected result (2-core CPU): about 1.5 minutes of init and compile (seconds
when the compilation cache is warm), then about 0.5 s per step; the derived
genotype and the search validation accuracy are printed at the end (see
BUILD_NOTES.md for the numbers measured).
"""

import ml_collections

from darts_jax import configs


def get_config(arg: str = 'first') -> ml_collections.ConfigDict:
  return configs.search_digits_config(arg)

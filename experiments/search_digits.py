"""The embedded default: a DARTS search on scikit-learn's 8x8 digits (no download).

Command:
  python -m darts_jax.main --config=experiments/search_digits.py --workdir=/tmp/darts_digits

The 1437 training digits are split as the DARTS code splits CIFAR-10: the first 718
are search-train, the other 719 search-val. A 2-cell supernet (a normal and a reduction
cell) with all 8 DARTS ops, C=8, searches first order for 20 epochs at batch 64 (11 steps
per epoch), alpha lr 6e-3.
Expected result (2-core AMD EPYC, 2026-12-07, no compilation cache): 86 s in all, of
which 16 s for the first step (compile) and 0.12-0.14 s per step after; validation
accuracy 0.944 at the end, printed with the derived genotype.
"""

import ml_collections

from darts_jax import configs


def get_config(arg: str = 'first') -> ml_collections.ConfigDict:
  return configs.search_digits_config(arg)

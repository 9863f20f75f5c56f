"""The embedded default: a DARTS search on scikit-learn's 8x8 digits (no download).

Command:
  python -m darts_jax.main --config=experiments/search_digits.py --workdir=/tmp/darts_digits

The 1437 training digits are split 718/719 into search-train and search-val.
A 3-cell supernet (normal, reduce, reduce) with all 8 DARTS ops, C=8, searches
first order for 10 epochs at batch 64.
Expected result (2-core CPU): about 1-2 minutes of compile, then a few seconds
per epoch; search validation accuracy above 0.9 and a derived genotype printed
at the end (see BUILD_NOTES.md for the measured numbers).
"""

import ml_collections

from darts_jax import configs


def get_config(arg: str = 'first') -> ml_collections.ConfigDict:
  config = configs.search_config(arg)
  config.seed = 0
  config.dataset.name = 'digits'
  config.model.init_channels = 8
  config.model.layers = 3
  config.train.epochs = 10
  config.train.crop_padding = 1
  return config

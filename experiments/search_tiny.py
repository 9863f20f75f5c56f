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
  config = configs.search_config(arg)
  config.seed = 0
  config.dataset.name = 'digits'
  config.search_space.primitives = ['none', 'max_pool_3x3', 'skip_connect', 'sep_conv_3x3']
  config.model.init_channels = 4
  config.model.layers = 2
  config.train.batch_size = 16
  config.train.epochs = 2
  config.train.crop_padding = 1
  config.eval_batch_size = 64
  config.max_steps_per_epoch = 3
  config.checkpoint_every_steps = 1  # Resume tests kill it between any two steps.
  return config

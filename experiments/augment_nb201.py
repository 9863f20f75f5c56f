"""Train a NAS-Bench-201 cell from scratch (an arch string, or a search workdir).

Commands:
  python -m darts_jax.main --config=experiments/augment_nb201.py --workdir=/tmp/nb201_train \
    --config.genotype='|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|'
  python -m darts_jax.main --config=experiments/augment_nb201.py --workdir=/tmp/nb201_train \
    --config.genotype=/tmp/nb201_gdas          # the cell a search derived
  python -m darts_jax.main --config=experiments/augment_nb201.py:tiny --workdir=/tmp/nb201_tt

Network: stem 3x3 conv C=16 + BN, 5 cells, ResNet block (stride 2), 5 cells at 32,
ResNet block, 5 cells at 64, BN-ReLU-GAP-linear (affine BN). Training (NAS-Bench-201's
200-epoch recipe, AutoDL-Projects configs/nas-benchmark/hyper-opts/200E.config): batch
256, SGD lr 0.1 cosine to 0, Nesterov momentum 0.9, weight decay 5e-4, no gradient
clipping, crop + flip. The benchmark's tabulated CIFAR-10 test accuracy of the best cell
is 94.37 %.
"""

import ml_collections

from darts_jax.configs import benchmarks


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  return benchmarks.augment_nb201(arg)

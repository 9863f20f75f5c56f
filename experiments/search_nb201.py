"""Search the NAS-Bench-201 space (Dong & Yang, ICLR 2020) with any method.

Commands (the argument is the method, optionally `,tiny`):
  python -m darts_jax.main --config=experiments/search_nb201.py:darts --workdir=/tmp/nb201_darts
  python -m darts_jax.main --config=experiments/search_nb201.py:gdas --workdir=/tmp/nb201_gdas
  python -m darts_jax.main --config=experiments/search_nb201.py:pc_darts --workdir=/tmp/nb201_pc
  python -m darts_jax.main --config=experiments/search_nb201.py:drnas --workdir=/tmp/nb201_drnas
  python -m darts_jax.main --config=experiments/search_nb201.py:random_ws --workdir=/tmp/nb201_rsws
  # Smoke run on digits (seconds of compute; minutes of compile on a loaded 2-core CPU):
  python -m darts_jax.main --config=experiments/search_nb201.py:gdas,tiny --workdir=/tmp/nb201_t
  # With the benchmark file and `pip install nas-bench-201` (or nats_bench):
  ... --config.search_space.benchmark_path=/data/NAS-Bench-201-v1_1-096897.pth
  # AutoDL-Projects' own 25k/25k split (configs/nas-benchmark/cifar-split.txt):
  ... --config.dataset.search_split=/data/cifar-split.txt

Space: 5 ops (none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3), 4-node
cell (6 edges), stem 3x3 conv C=16, 5 cells, ResNet block, 5 cells at 2C, ResNet
block, 5 cells at 4C, BN-ReLU-GAP-linear. CIFAR-10 train split halved 25k/25k (the
first and second half of the official files' order unless a split file is given).
Settings (NAS-Bench-201's own configs, sources in darts_jax/configs/benchmarks.py): batch
64, SGD lr 0.025 cosine to 0.001, Nesterov momentum 0.9, weight decay 5e-4, the weight
step before the alpha step (AutoDL's search loops); alphas Adam 3e-4 (0.5, 0.999),
weight decay 1e-3; 50 epochs for DARTS and PC-DARTS, 240 for GDAS (tau 10 -> 0.1), 250
for random search with weight sharing (best of 100 candidates, each on one validation
batch), 100 for DrNAS (its own code: plain momentum, weight decay 3e-4, the alpha step
first, alphas frozen for 10 epochs). BN keeps running statistics, as AutoDL's
`--track_running_stats 1`; `--config.model.track_running_stats=False` is its BN=0: every
evaluation (the per-epoch validation, random_ws's candidate ranking) normalizes with the
batch's own statistics.
The derived cell is printed as an arch string
(`|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|`)
and written to <workdir>/arch.txt; train it from scratch with experiments/augment_nb201.py.
Published (NAS-Bench-201 paper, CIFAR-10 test accuracy of the found cell): DARTS
1st/2nd order 54.30 (collapse to skip_connect), GDAS 93.61 +- 0.09, optimum 94.37.
"""

import ml_collections

from darts_jax.configs import benchmarks


def get_config(arg: str = 'darts') -> ml_collections.ConfigDict:
  return benchmarks.search_nb201(arg)

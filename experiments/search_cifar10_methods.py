"""Search the DARTS space on CIFAR-10 with any method (DARTS, GDAS, PC-DARTS, DrNAS, RSWS).

Commands (the argument is the method, optionally `,tiny`):
  python -m darts_jax.main --config=experiments/search_cifar10_methods.py:darts --workdir=/tmp/c10_darts
  python -m darts_jax.main --config=experiments/search_cifar10_methods.py:gdas --workdir=/tmp/c10_gdas
  python -m darts_jax.main --config=experiments/search_cifar10_methods.py:pc_darts --workdir=/tmp/c10_pc
  python -m darts_jax.main --config=experiments/search_cifar10_methods.py:drnas --workdir=/tmp/c10_drnas
  python -m darts_jax.main --config=experiments/search_cifar10_methods.py:random_ws --workdir=/tmp/c10_rsws
  # Smoke run on digits (2 cells of 2 nodes, 4 ops, C=4):
  python -m darts_jax.main --config=experiments/search_cifar10_methods.py:pc_darts,tiny --workdir=/tmp/c10_t

Settings: the DARTS paper's (50 epochs, batch 64, SGD lr 0.025 -> 0.001, weight
decay 3e-4, alphas Adam 3e-4 (0.5, 0.999) weight decay 1e-3), then per method the
official code's (sources in darts_jax/configs/benchmarks.py):
  gdas       tau 10 -> 0.1 linearly over the epochs; 250 epochs, batch 256, weight decay 5e-4,
             Nesterov SGD, the weight step before the alpha step (AutoDL-Projects).
  pc_darts   K=4 partial channels + edge normalization, batch 256, lr 0.1 -> 0.001,
             alpha lr 6e-4, alphas frozen for the first 15 epochs. Published: 2.57 +- 0.07 %
             test error, 3.6M params, 0.1 GPU-days.
  drnas      Dirichlet(softplus(alpha) + 1e-3), alpha Adam weight decay 1e-3, alpha lr 6e-4,
             lr 0.1 -> 0, alphas frozen for 10 epochs (DrNAS's partial channels and
             progressive pruning are not implemented).
  random_ws  150 epochs of uniformly random architectures on the shared weights; the best
             of 1000 random candidates on 640 validation images (10 batches) is the result.
The derived genotype trains from scratch with experiments/augment_cifar10.py
(--config.genotype=<workdir>).
"""

import ml_collections

from darts_jax.configs import benchmarks


def get_config(arg: str = 'darts') -> ml_collections.ConfigDict:
  return benchmarks.search_cifar10(arg)

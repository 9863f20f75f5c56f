"""DARTS search on CIFAR-10 with the paper's settings (Liu et al. 2019, sec. 3.1).

Command (first order; `:second` for the exact second order, `:second_fd` for
the paper's finite-difference second order):
  python -m darts_jax.main --config=experiments/search_cifar10.py --workdir=/tmp/darts_c10
  python -m darts_jax.main --config=experiments/search_cifar10.py:second --workdir=/tmp/darts_c10_2nd
Add `--config.arch.share_train_grad=True` to a second-order search to step the
weights with the virtual step's train gradient (one pass fewer; BUILD_NOTES.md).

Data: CIFAR-10 prepared for tfds (or cifar-10-binary.tar.gz in
<data_dir>/downloads/manual/). The search uses the 50k training images only, the
first 25k for the weights and the other 25k for the alphas, as the DARTS code; the test
set is never read.
Expected result: the paper reports a derived cell that, trained from scratch
(experiments/augment_cifar10.py), reaches 3.00 +- 0.14 % (first order) and
2.76 +- 0.09 % (second order) test error with ~3.3M parameters; the search's
own validation accuracy ends near 88-90 %. The reference takes ~1.5 (first
order) and ~4 (second order) GPU-days for 4 runs.
Expected time: on a 2-core CPU (2-core AMD EPYC, Zen 4, 2026-12-07, measured by
`experiments/benchmark.py --cases=speed`) the step takes 8.97 s (first order) / 35.65 s
(exact second order) at batch 64, the exact one after a 79 s compile: 390 steps per
epoch, so ~49 / ~193 hours for 50 epochs, not practical; use a GPU or TPU.
"""

import ml_collections

from darts_jax import configs


def get_config(arg: str = 'first') -> ml_collections.ConfigDict:
  return configs.search_config(arg)

r"""DARTS evaluation on CIFAR-10: train the DARTS_V2 cell from scratch.

The paper's setting (Liu et al., ICLR 2019, Sec. 3.3 and the reference
`cnn/train.py`): 20 cells, 36 initial channels, auxiliary head (weight 0.4),
drop path 0.2 ramped linearly over the epochs, cutout 16, batch 96, 600
epochs, SGD lr 0.025 (momentum 0.9, weight decay 3e-4) cosine-annealed to 0,
gradient-norm clip 5.

Train:
  python -m darts_jax.main --config=experiments/augment_cifar10.py \
      --workdir=/tmp/darts/augment_cifar10
Another cell: append --config.genotype=PDARTS (a zoo name, paper text or the
search workdir). Model size:
  python -m darts_jax.summary --config=experiments/augment_cifar10.py

Expected: test error 2.76 +- 0.09 % (DARTS second order + cutout, the paper's
Table 1; first-order cell DARTS_V1: 3.00 +- 0.14 %). Size: 3,349,342 weights
without the auxiliary head (paper: 3.3M; the reference code prints 3.35M) and
528M multiply-adds per 32x32 image.
Time: rough estimate, not measured: 600 epochs x 50k images x ~3 x 528M
multiply-adds is ~1e17 FLOPs, about half a day to a day on one modern GPU at
the low utilization typical of depthwise-heavy small-image nets. Measured on a
2-core CPU (`python experiments/benchmark.py --cases=augment_darts_v2_b96`): 15.1 s per
step of 96 images (compile 44 s, peak RSS 10.7 GB) on an AMD EPYC (Zen 4, 2026-12-07),
26-28 s on an Intel Xeon (2026-12-02); ~2.2 h per epoch, so months for 600 epochs: use a
GPU or TPU.
"""

import ml_collections

from darts_jax import configs


def get_config() -> ml_collections.ConfigDict:
  return configs.augment_config()

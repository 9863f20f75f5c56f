r"""PC-DARTS's search directly on ImageNet (Xu et al., ICLR 2020, Sec. 4.3).

Search (the argument '' or 'tiny'; 'tiny' is the tests' smoke setting on mock data):
  python -m darts_jax.main --config=experiments/search_imagenet.py \
      --workdir=/tmp/darts/search_imagenet
Then train the derived cell from scratch in the mobile setting:
  python -m darts_jax.main --config=experiments/augment_imagenet.py \
      --config.genotype=/tmp/darts/search_imagenet --workdir=/tmp/darts/augment_imagenet_pc

Settings (darts_jax/configs/benchmarks.py: search_imagenet, from the official
train_search_imagenet.py and model_search_imagenet.py): 8 cells, C=16, a stem of
three stride-2 3x3 convs (224 -> 28 pixels before the first cell), K=2 partial
channels with edge normalization; search-train and search-val are 10% and 2.5% of
ImageNet's train set (random-resized crops and flips on both; the smaller
search-val is cycled); 50 epochs at batch 1024, SGD lr 0.5 cosine to 0 with a
5-epoch linear warm-up, momentum 0.9, weight decay 3e-4, gradient-norm clip 5;
alphas Adam lr 6e-3, betas (0.5, 0.999), weight decay 1e-3, clipped at 5, frozen
for the first 35 epochs. The data must be prepared first
(`tfds build imagenet2012 --data_dir=...`, then --config.dataset.data_dir).

Expected (paper, Table 3: the cell PC_DARTS_image in darts_jax/spaces/darts/zoo.py):
24.2 % top-1 / 7.3 % top-5 error after the mobile-setting evaluation, 5.3M weights,
597M multiply-adds; search cost 3.8 GPU-days (8 V100s, 11.5 hours). Not run here:
no ImageNet and no GPU on this project's machines; the tests run the 'tiny'
setting on tfds mock data.
Deviation: the subsets are drawn uniformly from the whole train set (the official
code samples each class; uniform sampling leaves ~128 +- 11 images per class in
the 10% subset).
"""

import ml_collections

from darts_jax.configs import benchmarks


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  return benchmarks.search_imagenet(arg)

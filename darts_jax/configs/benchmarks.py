"""Search configs per space and method, and NAS-Bench-201 training from scratch.

Used by experiments/search_cifar10_methods.py, experiments/search_imagenet.py,
experiments/search_nb201.py and experiments/augment_nb201.py. A config argument is
`method` or `method,tiny` (e.g. `--config=experiments/search_nb201.py:gdas,tiny`).

Where the settings come from (checked against the official code, 2026-11-28):
  * DARTS: ../shared/reference/darts_facts.md.
  * PC-DARTS: yuhuixu1993/PC-DARTS train_search.py (epochs 50, batch 256, SGD
    lr 0.1 -> 0.001 cosine, arch lr 6e-4, arch updates from epoch 15) and
    model_search.py (K = 4); on ImageNet train_search_imagenet.py and
    model_search_imagenet.py (see search_imagenet).
  * GDAS: D-X-Y/AutoDL-Projects, DARTS space configs/search-opts/GDAS-NASNet-CIFAR.config
    and scripts-search/GDAS-search-NASNet-space.sh (250 epochs, batch 256, SGD
    0.025 -> 0.001, weight decay 5e-4); NAS-Bench-201 configs/nas-benchmark/algos/GDAS.config
    (240 epochs, batch 64); tau 10 -> 0.1 linear per epoch (exps/algos/GDAS.py).
  * DrNAS: xiangning-chen/DrNAS DARTS-space/train_search.py (50 epochs, batch 64,
    SGD 0.1 -> 0, arch lr 6e-4, reg scale 1e-3) and 201-space/train_search_progressive.py
    (100 epochs, SGD 0.025 -> 0.001, weight decay 3e-4, arch lr 3e-4); arch updates
    from epoch 10.
  * Random search with weight sharing: liamcli/randomNAS_release (DARTS space: 150
    epochs, batch 64; 1000 candidates scored on 10 validation batches per round);
    NAS-Bench-201 RANDOM-NAS (250 epochs, batch 64, 100 candidates on one batch).
  * NAS-Bench-201 searches: configs/nas-benchmark/algos/DARTS.config (batch 64, SGD
    0.025 -> 0.001, weight decay 5e-4; alphas Adam 3e-4, weight decay 1e-3).
AutoDL-Projects' searches (GDAS in both spaces, every NAS-Bench-201 search but DrNAS's)
use Nesterov SGD (config.train.nesterov) and step the weights before the alphas
(config.arch.update_order='weights_first'), as its exps/algos/GDAS.py and DARTS-V1.py.
Deviations: DrNAS runs
without its progressive stages (official DARTS-space/train_search.py: a 20-cell C=36
supernet without the 'none' op, partial channels K=6 for 25 epochs, then pruning to the 4
best ops per edge and K=4 for 25 more; 201-space/train_search_progressive.py: K=4 for 50
epochs, then the 3 best ops per edge and K=2 for 50 more; both without PC-DARTS's edge
normalization), with one warm-up at the start (the official code warms up at the start
of each stage), concentration softplus(alpha) + eps (official: elu(alpha) + 1),
and the derivation ranks the Dirichlet mean (official: softmax(alpha); the same best op
per edge, the edge ranking can differ);
random_ws ranks candidates once (randomNAS re-scores the top 10 on the whole
validation split in rounds); PC-DARTS in NAS-Bench-201 has no official setting
(the DARTS NAS-Bench-201 recipe is used, with PC-DARTS's alpha lr 6e-4).

A method without a recipe here (a plug-in of your own) runs with the benchmark's DARTS
settings and its own defaults.
"""

import ml_collections

from darts_jax import methods
from darts_jax.configs import defaults
from darts_jax.spaces.nb201.arch import PRIMITIVES as NB201_PRIMITIVES

# Each method's official trainer on top of the DARTS paper's CIFAR-10 search, as
# {dotted config field: value} (sources above). The method's own hyperparameters (tau,
# K, ...) default to the plug-in's values, which are its paper's.
CIFAR10_RECIPES = {
    'darts': {},
    # AutoDL's GDAS search loop steps the weights, then the alphas; its SGD is Nesterov.
    'gdas': {'arch.update_order': 'weights_first', 'train.nesterov': True,
             'train.epochs': 250, 'train.batch_size': 256, 'train.weight_decay': 5e-4},
    'pc_darts': {'method.arch_start_epoch': 15, 'train.batch_size': 256, 'train.lr': 0.1,
                 'train.lr_min': 0.001, 'arch.lr': 6e-4},
    # DrNAS's default regularizer (reg_type 'l2', reg_scale 1e-3) is the alphas' Adam
    # weight decay, as the DARTS default.
    'drnas': {'train.lr': 0.1, 'train.lr_min': 0.0, 'arch.lr': 6e-4,
              'arch.weight_decay': 1e-3, 'method.arch_start_epoch': 10},
    'random_ws': {'train.epochs': 150, 'method.num_candidates': 1000,
                  'method.candidate_eval_examples': 640},
}

# NAS-Bench-201 (AutoDL's configs/nas-benchmark/algos/*.config: batch 64, Nesterov SGD
# 0.025 -> 0.001, weight decay 5e-4; its search loops exps/algos/DARTS-V1.py, GDAS.py step
# the weights, then the alphas), then each method's own settings.
NB201_BASE = {'train.batch_size': 64, 'train.lr': 0.025, 'train.lr_min': 0.001,
              'train.weight_decay': 5e-4, 'train.nesterov': True,
              'arch.update_order': 'weights_first', 'train.epochs': 50}
NB201_RECIPES = {
    'darts': {},
    # Skipping unsampled ops measured slower here (BUILD_NOTES.md); AutoDL's cell passes
    # a gradient to every op's probability.
    'gdas': {'train.epochs': 240, 'method.skip_unused_ops': False,
             'method.straight_through': 'every_op'},
    'pc_darts': {'arch.lr': 6e-4},
    # DrNAS's own 201-space/train_search_progressive.py.
    'drnas': {'train.epochs': 100, 'arch.lr': 3e-4, 'arch.weight_decay': 1e-3,
              'train.weight_decay': 3e-4, 'train.nesterov': False,
              'arch.update_order': 'alphas_first', 'method.arch_start_epoch': 10},
    'random_ws': {'train.epochs': 250, 'method.num_candidates': 100,
                  'method.candidate_eval_examples': 64},
}


def apply(config: ml_collections.ConfigDict, settings: dict) -> None:
  """Sets each dotted field of `settings` (e.g. 'train.lr') in `config`."""
  for path, value in settings.items():
    *parents, field = path.split('.')
    node = config
    for parent in parents:
      node = node[parent]
    node[field] = value


def parse_arg(arg: str) -> tuple[str, bool]:
  """'gdas' -> ('gdas', False); 'gdas,tiny' -> ('gdas', True)."""
  parts = [p.strip() for p in (arg or 'darts').split(',') if p.strip()]
  name = parts[0] if parts else 'darts'
  extra = set(parts[1:])
  if name not in methods.names():
    raise ValueError(f'unknown method {name!r}; use one of {methods.names()} '
                     '(optionally followed by ",tiny")')
  if extra - {'tiny'}:
    raise ValueError(f'unknown config options {sorted(extra - {"tiny"})}; only "tiny"')
  return name, 'tiny' in extra


def search_cifar10(arg: str = 'darts') -> ml_collections.ConfigDict:
  """DARTS space on CIFAR-10 (the DARTS paper's search settings, then the method's)."""
  name, tiny = parse_arg(arg)
  config = defaults.search_config('first')
  config.method.name = name
  apply(config, CIFAR10_RECIPES.get(name, {}))
  if tiny:
    _tiny(config)
    config.search_space.primitives = ['none', 'skip_connect', 'avg_pool_3x3', 'dil_conv_3x3']
    config.search_space.steps = 2
    config.search_space.multiplier = 2
    config.model.layers = 2
  return config


def search_imagenet(arg: str = '') -> ml_collections.ConfigDict:
  """PC-DARTS's search on ImageNet (yuhuixu1993/PC-DARTS train_search_imagenet.py and
  model_search_imagenet.py): 8 cells, C=16, three stride-2 stem convs, K=2 partial
  channels + edge normalization; 10% / 2.5% of the train set as search-train / -val
  (random-resized crops and flips on both); 50 epochs at batch 1024, SGD lr 0.5 cosine
  to 0 with a 5-epoch linear warm-up, weight decay 3e-4, gradient clip 5; alphas Adam
  6e-3 (0.5, 0.999), weight decay 1e-3, clipped at 5 too, frozen for 35 epochs.
  `arg`: '' or 'tiny' (2 cells, C=4, 4 ops: a smoke test on mock data)."""
  if arg not in ('', 'tiny'):
    raise ValueError(f'unknown config argument {arg!r}; use "" or "tiny"')
  config = defaults.search_config('first')
  config.method.name = 'pc_darts'
  config.dataset.name = 'imagenet2012'
  config.dataset.search_split = 'random'  # A random sample of ImageNet, not its head.
  config.dataset.search_subset, config.dataset.train_portion = 0.125, 0.8
  config.model.stem = 'imagenet'
  config.method.partial_channels = 2
  config.method.arch_start_epoch = 35
  config.train.update(batch_size=1024, epochs=50, lr=0.5, lr_min=0.0, warmup_epochs=5,
                      weight_decay=3e-4, grad_clip=5.0, crop_padding=0)
  config.arch.update(lr=6e-3, weight_decay=1e-3, grad_clip=5.0)
  config.eval_batch_size = 1024
  if arg == 'tiny':
    config.seed = 0
    config.dataset.search_subset = 1.0
    config.search_space.primitives = ['none', 'skip_connect', 'max_pool_3x3', 'sep_conv_3x3']
    config.search_space.steps = 2
    config.search_space.multiplier = 2
    config.model.init_channels = 4
    config.model.layers = 2
    config.train.update(batch_size=4, epochs=2, warmup_epochs=2)
    config.method.arch_start_epoch = 0
    config.eval_batch_size = 4
    config.checkpoint_every_steps = 0
  return config


def search_nb201(arg: str = 'darts') -> ml_collections.ConfigDict:
  """NAS-Bench-201 space on CIFAR-10: C=16, 5 cells per stage."""
  name, tiny = parse_arg(arg)
  config = defaults.search_config('first')
  config.search_space.name = 'nb201'
  config.search_space.primitives = list(NB201_PRIMITIVES)
  config.model.init_channels = 16
  config.model.layers = 5  # Cells per stage.
  config.method.name = name
  apply(config, NB201_BASE)
  apply(config, NB201_RECIPES.get(name, {}))
  if tiny:
    _tiny(config)
    config.model.layers = 1
  return config


def _tiny(config) -> None:
  """Digits, C=4, 1 epoch of 2 steps at batch 16: seconds of compute, a smoke test."""
  config.seed = 0
  config.dataset.name = 'digits'
  config.model.init_channels = 4
  config.train.batch_size = 16
  config.train.epochs = 1
  config.train.crop_padding = 1
  config.train.lr, config.train.lr_min = 0.025, 0.001
  config.method.partial_channels = 2
  config.method.arch_start_epoch = 0
  config.method.num_candidates = 3
  config.method.candidate_eval_examples = 64
  config.eval_batch_size = 64
  config.max_steps_per_epoch = 2
  config.checkpoint_every_steps = 0


def augment_nb201(arg: str = '') -> ml_collections.ConfigDict:
  """Train a NAS-Bench-201 cell from scratch (config.genotype: an arch string or a workdir).

  NAS-Bench-201's recipe (AutoDL configs/nas-benchmark/hyper-opts/200E.config and
  exps/NAS-Bench-201/functions.py): 200 epochs, batch 256, SGD lr 0.1 cosine to 0,
  Nesterov momentum 0.9, weight decay 5e-4, no gradient clipping, random crop and flip,
  no cutout, no auxiliary head, no drop path; the cosine moves once per epoch (AutoDL's
  CosineAnnealingLR uses the iteration only in a warm-up, which this recipe has not).
  """
  config = defaults.augment_config()
  config.genotype = ('|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+'
                     '|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|')
  config.model.init_channels = 16
  config.model.layers = 5  # Cells per stage.
  config.model.auxiliary = False
  config.model.drop_path_prob = 0.0
  config.train.batch_size = 256
  config.train.epochs = 200
  config.train.lr, config.train.lr_min = 0.1, 0.0
  config.train.weight_decay = 5e-4
  config.train.nesterov = True
  config.train.grad_clip = 0.0
  config.train.cutout = 0
  if arg == 'tiny':
    config.seed = 0
    config.dataset.name = 'digits'
    config.model.init_channels = 4
    config.model.layers = 1
    config.train.batch_size = 32
    config.train.epochs = 1
    config.train.crop_padding = 1
    config.eval_batch_size = 128
    config.max_steps_per_epoch = 3
    config.checkpoint_every_steps = 0
  elif arg:
    raise ValueError(f'unknown config argument {arg!r}; use "" or "tiny"')
  return config


def augment_imagenet() -> ml_collections.ConfigDict:
  """The DARTS ImageNet evaluation (mobile setting): the CIFAR evaluation config's fields
  with the paper's ImageNet values (quark0/darts cnn/train_imagenet.py)."""
  config = defaults.augment_config()
  config.dataset.name = 'imagenet2012'
  config.model.update(network='imagenet', init_channels=48, layers=14, auxiliary=True,
                      auxiliary_weight=0.4, drop_path_prob=0.0)
  config.train.update(
      batch_size=128, epochs=250, lr=0.1,
      lr_schedule='exponential', lr_decay=0.97,  # Per epoch.
      momentum=0.9, weight_decay=3e-5, grad_clip=5.0, label_smoothing=0.1,
      cutout=0,
      crop_padding=0,  # ImageNet uses random resized crops, not padding ...
      color_jitter=(0.4, 0.4, 0.4, 0.2))  # ... and torchvision's ColorJitter.
  return config


def pipeline_nb201(arg: str = 'darts') -> ml_collections.ConfigDict:
  """A NAS-Bench-201 search with `arg`'s method, then the derived and a random cell trained
  from scratch with NAS-Bench-201's recipe (',tiny': both tiny)."""
  _, tiny = parse_arg(arg)
  return defaults.pipeline_config(search_nb201(arg), augment_nb201('tiny' if tiny else ''))

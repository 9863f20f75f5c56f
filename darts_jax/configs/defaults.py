"""Default configs that the files in experiments/ start from and override."""

import ml_collections

from darts_jax import methods
from darts_jax.spaces.darts.genotype import PRIMITIVES

def batch_size(value: int) -> ml_collections.FieldReference:
  """config.train.batch_size: an integer, or 'auto' on the command line (the largest
  batch whose compiled step fits the device's memory; darts_jax/runtime/memory.py)."""
  return ml_collections.FieldReference(value, field_type=object)


SEARCH_ORDERS = {'first': 'first', 'second': 'second_exact', 'second_fd': 'second_fd'}


def search_config(order: str = 'first') -> ml_collections.ConfigDict:
  """The paper's CIFAR-10 search settings (Liu et al. 2019, sec. 3.1 and A.1)."""
  if order not in SEARCH_ORDERS:
    raise ValueError(f'unknown search order {order!r}; use one of {sorted(SEARCH_ORDERS)}')
  config = ml_collections.ConfigDict()
  config.mode = 'search'
  config.seed = 2
  # data_dir '': $TFDS_DATA_DIR or ~/tensorflow_datasets (a string, so that
  # --config.dataset.data_dir=... can override it; ml_collections refuses None fields).
  # The search divides the train split into search-train and search-val
  # (`search_split`): 'ordered', as the DARTS code (and pt.darts, PC-DARTS, DrNAS,
  # NNI), takes the first `train_portion` of the official files' order and the rest;
  # 'random' a seeded random `train_portion` of a random `search_subset` (PC-DARTS on
  # ImageNet: 0.125) and the rest of it; a path reads a split file (AutoDL-Projects'
  # NAS-Bench-201 `cifar-split.txt`, see data.file_split). An epoch is one pass over
  # search-train; a smaller search-val is cycled.
  # image_size 0: the data's own size (else a square resize); test_fraction: the held-out
  # part of a dataset without a test split (darts_jax/data/sources.py).
  config.dataset = dict(name='cifar10', data_dir='', search_split='ordered', train_portion=0.5,
                        search_subset=1.0, image_size=0, test_fraction=0.2)
  config.search_space = dict(primitives=tuple(PRIMITIVES), steps=4, multiplier=4,
                             name='darts',  # A registered space: darts_jax.spaces.names().
                             benchmark_path='', benchmark_dataset='cifar10')  # nb201 only.
  # How alphas become edge weights: a registered method (darts_jax.methods.names()), and
  # every registered method's hyperparameters with the defaults its plug-in declares.
  config.method = dict(name='darts', **methods.default_hyperparameters())
  config.model = dict(init_channels=16, layers=8, stem_multiplier=3,
                      stem='cifar',  # Or 'imagenet': PC-DARTS's three stride-2 convs.
                      depthwise_impl='auto',
                      cell_impl='auto',  # 'scan' on CPU, 'grouped' on GPU/TPU.
                      remat='auto',  # Recompute activations in backward: 'auto' = on CPU.
                      compute_dtype='float32',  # Or 'bfloat16' (params stay float32).
                      # False: no running BN statistics; evaluation normalizes with the
                      # batch's own (PyTorch's track_running_stats=False, AutoDL's BN=0).
                      track_running_stats=True)
  config.train = dict(batch_size=batch_size(64), epochs=50, lr=0.025, lr_min=0.001, momentum=0.9,
                      weight_decay=3e-4, grad_clip=5.0, crop_padding=4,
                      nesterov=False,  # True: torch.optim.SGD(nesterov=True) (AutoDL).
                      warmup_epochs=0)  # > 0: epoch e's lr times (e + 1) / warmup_epochs.
  config.arch = dict(order=SEARCH_ORDERS[order], lr=3e-4, beta1=0.5, beta2=0.999,
                     weight_decay=1e-3,
                     grad_clip=0.0,  # > 0: the alpha gradient's global norm is clipped.
                     # Second order: True steps the weights with the virtual step's train
                     # gradient (at the pre-update alphas), one pass fewer; DARTS: False.
                     share_train_grad=False,
                     # 'alphas_first' (DARTS) or 'weights_first' (GDAS; first order only).
                     update_order='alphas_first')
  # The compiled step's bytes are checked against this before the first step (0: the
  # device's memory, a CPU's physical memory); a batch over it stops with the largest
  # batch that fits.
  config.memory_limit_gb = 0.0
  config.eval_batch_size = 256
  config.max_steps_per_epoch = -1  # > 0 caps the steps of every epoch (smoke runs).
  # Checkpoints: every N steps (0: epoch ends only) and at every epoch end; last K kept.
  config.checkpoint_every_steps = 100
  config.checkpoints_to_keep = 2
  # A population: N searches in one program, e.g. (0, 1, 2, 3) (darts_jax/train/population.py);
  # () is one search of config.seed. shared_data_order: every seed sees config.seeds[0]'s
  # batches (for paired studies); else each its own.
  config.seeds = ()
  config.shared_data_order = False
  # A search under a budget (darts_jax/train/budget.py): kind 'params', 'macs' or 'latency';
  # weight > 0: the expected cost in the alpha loss; target > 0: a hard limit on the derived
  # cell. 0 and 0: no budget.
  config.budget = dict(kind='params', weight=0.0, target=0.0)
  return config


def augment_config() -> ml_collections.ConfigDict:
  """The paper's CIFAR-10 evaluation settings (Liu et al. 2019, sec. 3.3 and A.2)."""
  config = ml_collections.ConfigDict()
  config.mode = 'augment'
  config.seed = 0
  config.genotype = 'DARTS_V2'
  config.dataset = dict(name='cifar10', data_dir='', image_size=0,
                        test_fraction=0.2)  # As in search_config.
  config.model = dict(
      network='cifar', init_channels=36, layers=20, auxiliary=True, auxiliary_weight=0.4,
      drop_path_prob=0.2,  # Final value; the trainer ramps it from 0.
      compute_dtype='float32')  # Or 'bfloat16' (params stay float32).
  config.train = dict(
      batch_size=batch_size(96), epochs=600, lr=0.025,
      lr_schedule='cosine',  # Or 'exponential': lr * lr_decay ** epoch.
      lr_min=0.0, lr_decay=0.97, momentum=0.9, weight_decay=3e-4,
      grad_clip=5.0,  # <= 0: no clipping.
      nesterov=False,  # True: torch.optim.SGD(nesterov=True) (NAS-Bench-201's recipe).
      label_smoothing=0.0, cutout=16, crop_padding=4,
      color_jitter=())  # ImageNet only: (brightness, contrast, saturation, hue) or ().
  # The compiled step's bytes are checked against this before the first step (0: the
  # device's memory, a CPU's physical memory); a batch over it stops with the largest
  # batch that fits.
  config.memory_limit_gb = 0.0
  config.eval_batch_size = 256
  config.max_steps_per_epoch = -1  # > 0 caps the steps of every epoch (smoke runs).
  # Checkpoints: every N steps (0: epoch ends only) and at every epoch end; last K kept.
  config.checkpoint_every_steps = 100
  config.checkpoints_to_keep = 2
  return config


def search_digits_config(order: str = 'first') -> ml_collections.ConfigDict:
  """The search on scikit-learn's 8x8 digits (the embedded default)."""
  config = search_config(order)
  config.seed = 0
  config.dataset.name = 'digits'
  config.model.init_channels = 8
  config.model.layers = 2
  config.train.epochs = 20
  # 220 steps instead of the paper's ~19,500: a larger alpha step lets the
  # architecture move within the demo (the paper uses 3e-4).
  config.arch.lr = 6e-3
  config.train.crop_padding = 1
  return config


def search_tiny_config(order: str = 'first') -> ml_collections.ConfigDict:
  """A tiny search for tests and smoke runs: digits, 2 cells of 3 ops and 'none', C=4,
  2 epochs of 3 steps at batch 16 (seconds on a 2-core CPU)."""
  config = search_config(order)
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


def augment_digits_config() -> ml_collections.ConfigDict:
  """Training a cell from scratch on digits (8x8: no cutout, 1px crop padding)."""
  config = augment_config()
  config.dataset.name = 'digits'
  config.model.init_channels = 8
  config.model.layers = 3
  config.model.auxiliary = False
  config.model.drop_path_prob = 0.1
  config.train.batch_size = 64
  config.train.epochs = 10
  config.train.crop_padding = 1
  config.train.cutout = 0
  return config


def pipeline_config(search: ml_collections.ConfigDict,
                    augment: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Search, then train the derived cell and a random cell of the same space from scratch."""
  config = ml_collections.ConfigDict()
  config.mode = 'pipeline'
  config.seed = search.seed
  config.search = search
  config.augment = augment
  config.random_baseline = True
  return config

"""The trainers' one entry point to data: a dataset config in, facts and sources out.

`config.dataset.name` is one of:
  * a built-in name (`datasets.DATASETS`: digits, cifar10, ...), as `load_source` reads it;
  * `folder:/path`, or the path of a directory: class sub-folders (`custom`);
  * `npz:/path/file.npz`, or a path ending in .npz: arrays (`custom`);
  * any other tfds image-classification data set's tfds name, prepared as array_record
    under `config.dataset.data_dir` (`tfds_any`).

Fields read from the dataset config: `name`, `data_dir` ('' or absent: $TFDS_DATA_DIR or
~/tensorflow_datasets), `image_size` (0: the data's own size; else every image is resized
to image_size x image_size), `test_fraction` (0.2: the part of each class held out as the
test split of a data set without one). The search reads only the 'train' split, which is
disjoint from 'test' for every kind.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

from darts_jax.data import custom
from darts_jax.data import custom_base as base
from darts_jax.data import datasets
from darts_jax.data import tfds_any
from darts_jax.errors import UserError

KINDS: tuple[str, ...] = ('builtin', 'folder', 'npz', 'tfds')


def dataset_kind(name: str) -> str:
  """'builtin', 'folder', 'npz' or 'tfds' (any other name), from config.dataset.name."""
  if not isinstance(name, str) or not name.strip():
    raise UserError(f'config.dataset.name must be a dataset name or path, got {name!r}')
  if name in datasets.DATASETS:
    return 'builtin'
  if name.startswith(custom.FOLDER_PREFIX):
    return 'folder'
  if name.startswith(custom.NPZ_PREFIX) or name.lower().endswith('.npz'):
    return 'npz'
  if os.path.isdir(os.path.expanduser(name)):
    return 'folder'
  return 'tfds'


def _name(dataset_config: Any) -> str:
  return base.config_field(dataset_config, 'name', '')


def _data_dir(dataset_config: Any) -> str:
  data_dir = base.config_field(dataset_config, 'data_dir', '') or datasets.default_data_dir()
  return os.path.expanduser(os.fspath(data_dir))


def _check_split(name: str, split: str) -> None:
  if split not in datasets.SPLITS:
    raise UserError(f'unknown split {split!r} for {name}: use one of '
                    f'{", ".join(datasets.SPLITS)}')


def _builtin_size(name: str, dataset_config: Any) -> int:
  size = base.image_size(dataset_config)
  if size and name == 'imagenet2012':
    raise UserError('config.dataset.image_size does not apply to imagenet2012 (its images '
                    'are cropped to 224 on the host): set it to 0')
  return size


def dataset_info(dataset_config: Any) -> datasets.DatasetInfo:
  """The `DatasetInfo` of `config.dataset` (image_shape as fed to the model, mean and std
  of its train split, num_classes, class_names where known, num_train and num_test of
  the splits `load_split` returns; the built-in data sets' published figures)."""
  name = _name(dataset_config)
  kind = dataset_kind(name)
  if kind == 'builtin':
    info = datasets.get_info(name)
    size = _builtin_size(name, dataset_config)
    if size:
      info = dataclasses.replace(info, image_shape=(size, size, info.image_shape[-1]))
    return info
  if kind == 'folder':
    return custom.folder_info(name, dataset_config)
  if kind == 'npz':
    return custom.npz_info(name, dataset_config)
  return tfds_any.tfds_info(name, dataset_config, _data_dir(dataset_config))


def load_split(dataset_config: Any, split: str, *, seed: int = 0,
               color_jitter: Sequence[float] = (), download: bool = True) -> datasets.Source:
  """A random-access `Source` of `split` ('train' or 'test') of `config.dataset`.

  Args:
    dataset_config: config.dataset (a ConfigDict or a dict).
    split: 'train' or 'test'.
    seed: seed of ImageNet's random train crops (built-in imagenet2012 only).
    color_jitter: ImageNet train only (as `datasets.load_source`).
    download: whether the built-in data sets' builders may download archives.
  """
  name = _name(dataset_config)
  _check_split(name, split)
  kind = dataset_kind(name)
  if kind == 'builtin':
    size = _builtin_size(name, dataset_config)
    source = datasets.load_source(name, split, _data_dir(dataset_config), download=download,
                                  seed=seed, color_jitter=color_jitter)
    return base.ResizedSource(source, size) if size else source
  if kind == 'folder':
    return custom.folder_split(name, dataset_config, split)
  if kind == 'npz':
    return custom.npz_split(name, dataset_config, split)
  return tfds_any.tfds_split(name, dataset_config, _data_dir(dataset_config), split)

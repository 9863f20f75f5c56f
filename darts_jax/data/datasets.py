"""Datasets: their facts and random-access sources of uint8 images and labels.

Images stay uint8 on the host ([n, H, W, C]); normalisation and augmentation
run on the device (`darts_jax.data.augmentation`).

Where data comes from (`load_source`):
  * `digits`: scikit-learn's bundled 8x8 digits, no files needed.
  * `cifar10`, `cifar100`, `mnist`, `fashion_mnist`: a standard tfds dataset
    already prepared as array_record under `data_dir`; else the project's
    builder (`darts_jax.data.tfds_builders`), prepared from the official archives in
    `<data_dir>/downloads/manual/` or downloaded when the network is reachable.
  * `imagenet2012`: a standard tfds dataset prepared as array_record only.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import tarfile
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from darts_jax.data import imagenet
from darts_jax.errors import UserError

DATASETS: tuple[str, ...] = ('digits', 'cifar10', 'cifar100', 'mnist',
                             'fashion_mnist', 'imagenet2012')
SPLITS: tuple[str, ...] = ('train', 'test')

# Fixed permutation seed of the digits train/test split (never change it:
# results depend on it).
_DIGITS_SPLIT_SEED = 20190423
_DIGITS_NUM_TRAIN = 1437

# Seconds to wait for an official download URL before declaring it offline.
_PROBE_TIMEOUT_S = 5.0



@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """Static facts about a dataset.

  `num_train`/`num_test` are those of the full official dataset; the source
  in use may differ (e.g. a test fixture): use `len(source)` for sizes.
  """
  name: str
  num_classes: int
  image_shape: tuple[int, int, int]  # (H, W, C) as fed to the model.
  mean: tuple[float, ...]  # Per channel, for images scaled to [0, 1].
  std: tuple[float, ...]
  num_train: int
  num_test: int
  # The name of each label index, where known (() for cifar100 and imagenet2012).
  class_names: tuple[str, ...] = ()


_DIGIT_NAMES = tuple(str(i) for i in range(10))
_INFOS: dict[str, DatasetInfo] = {
    'digits': DatasetInfo('digits', 10, (8, 8, 1), (0.3053,), (0.3759,),
                          1437, 360, _DIGIT_NAMES),
    # The DARTS code's CIFAR_MEAN and CIFAR_STD (its `cnn/utils.py`).
    'cifar10': DatasetInfo('cifar10', 10, (32, 32, 3),
                           (0.49139968, 0.48215827, 0.44653124),
                           (0.24703233, 0.24348505, 0.26158768), 50000, 10000,
                           ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog',
                            'frog', 'horse', 'ship', 'truck')),
    'cifar100': DatasetInfo('cifar100', 100, (32, 32, 3),
                            (0.5071, 0.4865, 0.4409),
                            (0.2673, 0.2564, 0.2762), 50000, 10000),
    'mnist': DatasetInfo('mnist', 10, (28, 28, 1), (0.1307,), (0.3081,),
                         60000, 10000, _DIGIT_NAMES),
    'fashion_mnist': DatasetInfo('fashion_mnist', 10, (28, 28, 1), (0.2860,),
                                 (0.3530,), 60000, 10000,
                                 ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
                                  'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot')),
    'imagenet2012': DatasetInfo('imagenet2012', 1000, (224, 224, 3),
                                (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                                1281167, 50000),
}


@runtime_checkable
class Source(Protocol):
  """Random access to (images, labels), like a tfds data source."""

  def __len__(self) -> int:
    ...

  def get(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns images uint8 [n, H, W, C] and labels int32 [n]."""
    ...


def get_info(name: str) -> DatasetInfo:
  """Returns the `DatasetInfo` of `name`."""
  if name not in _INFOS:
    raise UserError(f'unknown dataset {name!r}: choose one of '
                    f'{", ".join(DATASETS)}')
  return _INFOS[name]


def default_data_dir() -> str:
  """`$TFDS_DATA_DIR`, else `~/tensorflow_datasets`."""
  return os.path.expanduser(
      os.environ.get('TFDS_DATA_DIR') or '~/tensorflow_datasets')


# ----------------------------------------------------------------------------
# Sources.


@dataclasses.dataclass(frozen=True)
class ArraySource:
  """A source over in-memory arrays."""
  images: np.ndarray  # uint8 [n, H, W, C]
  labels: np.ndarray  # int32 [n]

  def __len__(self) -> int:
    return len(self.labels)

  def get(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    indices = np.asarray(indices)
    return self.images[indices], self.labels[indices]

  def official_positions(self) -> np.ndarray:
    return np.arange(len(self))  # Kept in the distribution's order.


def get_examples(data_source: Any, indices: np.ndarray) -> Sequence[dict]:
  """Examples at `indices`, batched through `__getitems__` when it works."""
  keys = [int(i) for i in np.asarray(indices).reshape(-1)]
  if not keys:
    return []
  try:
    return data_source.__getitems__(keys)
  except TypeError:  # tfds.testing.mock_data's __getitems__ is broken.
    return [data_source[k] for k in keys]


@dataclasses.dataclass(frozen=True)
class TfdsSource:
  """A source over a tfds data source of fixed-shape images."""
  data_source: Any  # tfds ArrayRecordDataSource (or anything alike).
  # The project's builders write the records in the official files' order; tfds's
  # own builders shuffle them.
  in_official_order: bool = False

  def __len__(self) -> int:
    return len(self.data_source)

  def get(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    examples = get_examples(self.data_source, indices)
    return _stack(examples)

  def official_positions(self) -> np.ndarray | None:
    """Each record's position in the official files, from tfds's 'id' feature
    ('train_00042': 42; tfds's CIFAR builders) when the records are shuffled."""
    if self.in_official_order:
      return np.arange(len(self))
    positions = []
    for start in range(0, len(self), 1024):
      for example in get_examples(self.data_source,
                                   np.arange(start, min(start + 1024, len(self)))):
        record_id = example.get('id')
        if record_id is None:
          return None
        if isinstance(record_id, bytes):
          record_id = record_id.decode()
        try:
          positions.append(int(str(record_id).rsplit('_', 1)[-1]))
        except ValueError:  # Not tfds's 'split_index' ids (e.g. tfds's mock data).
          return None
    return np.asarray(positions, np.int64)


def _stack(examples: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
  images = np.stack([np.asarray(e['image'], np.uint8) for e in examples])
  labels = np.asarray([e['label'] for e in examples], np.int32)
  return images, labels

@dataclasses.dataclass(frozen=True)
class ImageNetSource:
  """ImageNet at 224x224: per-example host preprocessing with PIL.

  train: random-resized crop + horizontal flip (and, with `color_jitter`, the
  reference's colour jitter), from a numpy RNG seeded by (seed, epoch, index), so
  every epoch sees new crops, reproducibly. Use `with_epoch` (or `for_epoch`) to
  move to another epoch.
  test: resize the shorter side to 256, center crop 224.
  """
  data_source: Any
  train: bool
  seed: int = 0
  epoch: int = 0
  num_threads: int = 8
  color_jitter: tuple[float, ...] = ()  # (brightness, contrast, saturation, hue) or ().

  def __len__(self) -> int:
    return len(self.data_source)

  def with_epoch(self, epoch: int) -> ImageNetSource:
    return dataclasses.replace(self, epoch=int(epoch))

  def _one(self, index: int) -> tuple[np.ndarray, int]:
    (example,) = get_examples(self.data_source, np.asarray([index]))
    if self.train:
      rng = np.random.default_rng([self.seed, self.epoch, index])
      image = imagenet.random_resized_crop_flip(example['image'], rng)
      if self.color_jitter:
        image = imagenet.color_jitter(image, rng, *self.color_jitter)
    else:
      image = imagenet.resize_center_crop(example['image'])
    return image, int(example['label'])

  def get(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    indices = [int(i) for i in np.asarray(indices).reshape(-1)]
    # PIL decodes and resizes without the GIL: threads give real speedup.
    with concurrent.futures.ThreadPoolExecutor(self.num_threads) as pool:
      out = list(pool.map(self._one, indices))
    images = np.stack([o[0] for o in out]) if out else np.zeros(
        (0, imagenet.SIZE, imagenet.SIZE, 3), np.uint8)
    return images, np.asarray([o[1] for o in out], np.int32)


# ----------------------------------------------------------------------------
# Loading.


def load_source(name: str, split: str, data_dir: str | None = None, *,
                download: bool = True, seed: int = 0,
                color_jitter: Sequence[float] = ()) -> Source:
  """Returns a random-access `Source` for `split` ('train' or 'test').

  Args:
    name: one of `DATASETS`.
    split: 'train' or 'test' (ImageNet's 'test' is its validation set).
    data_dir: tfds data dir; default `default_data_dir()`.
    download: whether the project builders may download the official
      archives (only tried when the URL answers within a few seconds).
    seed: seed of ImageNet's random train crops.
    color_jitter: ImageNet train only: (brightness, contrast, saturation, hue) of
      torchvision's ColorJitter, or () for none.

  Raises:
    UserError: unknown name or split, or the data is not available.
  """
  get_info(name)  # Validates the name.
  if split not in SPLITS:
    raise UserError(f'unknown split {split!r} for {name}: use one of '
                    f'{", ".join(SPLITS)}')
  if name == 'digits':
    return _load_digits(split)
  data_dir = os.path.expanduser(os.fspath(data_dir or default_data_dir()))
  tfds_split = 'validation' if (name == 'imagenet2012' and
                                split == 'test') else split
  std_source, std_error = _standard_data_source(name, tfds_split, data_dir)
  data_source = std_source
  if data_source is None and name != 'imagenet2012':
    data_source = _project_data_source(name, split, data_dir, download,
                                       std_error)
  if data_source is None:
    raise UserError(
        f'{name} is not prepared under {data_dir} and cannot be prepared '
        f'here (it needs TensorFlow): on a machine with tensorflow-datasets '
        f'and TensorFlow, put ILSVRC2012_img_train.tar and '
        f'ILSVRC2012_img_val.tar into {data_dir}/downloads/manual/, run '
        f'`tfds build imagenet2012 --data_dir={data_dir} '
        f'--file_format=array_record`, then rerun{std_error}')
  if name == 'imagenet2012':
    return ImageNetSource(data_source, train=split == 'train', seed=seed,
                          color_jitter=tuple(color_jitter))
  return TfdsSource(data_source, in_official_order=std_source is None)


def _load_digits(split: str) -> ArraySource:
  """scikit-learn's digits as uint8 0..255, fixed 1437/360 split."""
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  digits = datasets.load_digits()
  images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
  labels = digits.target.astype(np.int32)
  perm = np.random.default_rng(_DIGITS_SPLIT_SEED).permutation(len(labels))
  part = perm[:_DIGITS_NUM_TRAIN] if split == 'train' else perm[
      _DIGITS_NUM_TRAIN:]
  part = np.sort(part)
  return ArraySource(images[part], labels[part])


def _standard_data_source(name: str, split: str,
                          data_dir: str) -> tuple[Any | None, str]:
  """tfds's own prepared dataset, or (None, a note on why it is unusable)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    return tfds.data_source(name, split=split, data_dir=data_dir,
                            download=False), ''
  except Exception as e:  # pylint: disable=broad-except
    # tfds raises assorted types for "not there" (AssertionError,
    # NotImplementedError for a missing or TFRecord-only dataset, ...).
    if not os.path.isdir(os.path.join(data_dir, name)):
      return None, ''
    reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return None, (f' (found {os.path.join(data_dir, name)} but could not '
                  f'read it: {reason}; it must be prepared with '
                  f'file_format=array_record)')


def _project_data_source(name: str, split: str, data_dir: str, download: bool,
                         std_error: str) -> Any:
  """The project builder's data source, preparing it if possible."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from darts_jax.data import tfds_builders  # pylint: disable=g-import-not-at-top
  builder_cls = tfds_builders.BUILDERS[name]
  builder = builder_cls(data_dir=data_dir, file_format='array_record')
  if not builder.is_prepared():
    manual_dir = os.path.join(data_dir, 'downloads', 'manual')
    spec = builder_cls.ARCHIVE
    have_manual = all(
        os.path.isfile(os.path.join(manual_dir, f)) for f in spec.files)
    if not have_manual and not (
        download and all(tfds_builders.url_reachable(u, _PROBE_TIMEOUT_S)
                         for u in spec.urls)):
      raise UserError(
          f'{name} is not prepared under {data_dir} and cannot be downloaded '
          f'here: copy {spec.help_text()} into {manual_dir}/ and rerun'
          f'{std_error}')
    config = tfds.download.DownloadConfig(manual_dir=manual_dir,
                                          try_download_gcs=False)
    try:
      builder.download_and_prepare(download_config=config)
    except (OSError, EOFError, ValueError, tarfile.TarError) as e:
      reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
      source = manual_dir if have_manual else 'the download'
      raise UserError(
          f'could not prepare {name} from {source}: {reason}; replace '
          f'{", ".join(spec.files)} with the official file(s)') from e
  return builder.as_data_source(split=split)

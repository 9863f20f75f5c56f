"""Datasets, the DARTS search split, per-epoch batching and host prefetch.

Images stay uint8 on the host ([n, H, W, C]); normalisation and augmentation
run on the device (`darts_jax.augmentation`).

Where data comes from (`load_source`):
  * `digits`: scikit-learn's bundled 8x8 digits, no files needed.
  * `cifar10`, `cifar100`, `mnist`, `fashion_mnist`: a standard tfds dataset
    already prepared as array_record under `data_dir`; else the project's
    builder (`darts_jax.tfds_builders`), prepared from the official archives in
    `<data_dir>/downloads/manual/` or downloaded when the network is reachable.
  * `imagenet2012`: a standard tfds dataset prepared as array_record only.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import os
import queue
import tarfile
import threading
import time
from typing import Any, Iterator, Protocol, Sequence, runtime_checkable

import numpy as np

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

_IMAGENET_SIZE = 224
_IMAGENET_RESIZE = 256


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


_INFOS: dict[str, DatasetInfo] = {
    'digits': DatasetInfo('digits', 10, (8, 8, 1), (0.3053,), (0.3759,),
                          1437, 360),
    # The DARTS code's CIFAR_MEAN and CIFAR_STD (its `cnn/utils.py`).
    'cifar10': DatasetInfo('cifar10', 10, (32, 32, 3),
                           (0.49139968, 0.48215827, 0.44653124),
                           (0.24703233, 0.24348505, 0.26158768), 50000, 10000),
    'cifar100': DatasetInfo('cifar100', 100, (32, 32, 3),
                            (0.5071, 0.4865, 0.4409),
                            (0.2673, 0.2564, 0.2762), 50000, 10000),
    'mnist': DatasetInfo('mnist', 10, (28, 28, 1), (0.1307,), (0.3081,),
                         60000, 10000),
    'fashion_mnist': DatasetInfo('fashion_mnist', 10, (28, 28, 1), (0.2860,),
                                 (0.3530,), 60000, 10000),
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


def _get_examples(data_source: Any, indices: np.ndarray) -> Sequence[dict]:
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
    examples = _get_examples(self.data_source, indices)
    return _stack(examples)

  def official_positions(self) -> np.ndarray | None:
    """Each record's position in the official files, from tfds's 'id' feature
    ('train_00042': 42; tfds's CIFAR builders) when the records are shuffled."""
    if self.in_official_order:
      return np.arange(len(self))
    positions = []
    for start in range(0, len(self), 1024):
      for example in _get_examples(self.data_source,
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
    (example,) = _get_examples(self.data_source, np.asarray([index]))
    if self.train:
      rng = np.random.default_rng([self.seed, self.epoch, index])
      image = random_resized_crop_flip(example['image'], rng)
      if self.color_jitter:
        image = color_jitter(image, rng, *self.color_jitter)
    else:
      image = resize_center_crop(example['image'])
    return image, int(example['label'])

  def get(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    indices = [int(i) for i in np.asarray(indices).reshape(-1)]
    # PIL decodes and resizes without the GIL: threads give real speedup.
    with concurrent.futures.ThreadPoolExecutor(self.num_threads) as pool:
      out = list(pool.map(self._one, indices))
    images = np.stack([o[0] for o in out]) if out else np.zeros(
        (0, _IMAGENET_SIZE, _IMAGENET_SIZE, 3), np.uint8)
    return images, np.asarray([o[1] for o in out], np.int32)


def for_epoch(source: Source, epoch: int) -> Source:
  """`source` for `epoch` (only sources with random host preprocessing vary)."""
  with_epoch = getattr(source, 'with_epoch', None)
  return with_epoch(epoch) if with_epoch is not None else source


def random_resized_crop_flip(
    image: np.ndarray, rng: np.random.Generator, size: int = _IMAGENET_SIZE,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> np.ndarray:
  """Inception-style random-resized crop to `size` plus a random flip."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  pil = Image.fromarray(np.asarray(image, np.uint8)).convert('RGB')
  w, h = pil.size
  side = min(w, h)  # Fallback: the central square.
  box = ((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2)
  for _ in range(10):
    area = w * h * rng.uniform(*scale)
    aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
    cw = int(round(np.sqrt(area * aspect)))
    ch = int(round(np.sqrt(area / aspect)))
    if 0 < cw <= w and 0 < ch <= h:
      x0 = int(rng.integers(0, w - cw + 1))
      y0 = int(rng.integers(0, h - ch + 1))
      box = (x0, y0, x0 + cw, y0 + ch)
      break
  pil = pil.resize((size, size), Image.BILINEAR, box=box)
  out = np.asarray(pil, np.uint8)
  return out[:, ::-1] if rng.random() < 0.5 else out


def color_jitter(image: np.ndarray, rng: np.random.Generator, brightness: float,
                 contrast: float, saturation: float, hue: float) -> np.ndarray:
  """torchvision's ColorJitter on a uint8 RGB image: each factor drawn uniformly
  from [max(0, 1 - s), 1 + s] (hue: a shift in [-hue, hue] of a turn), the four
  adjustments in random order, with PIL's enhancers as torchvision's PIL path."""
  from PIL import Image, ImageEnhance  # pylint: disable=g-import-not-at-top
  pil = Image.fromarray(np.asarray(image, np.uint8))

  def enhance(enhancer, strength):
    factor = rng.uniform(max(0.0, 1 - strength), 1 + strength)
    return lambda img: enhancer(img).enhance(factor)

  def shift_hue(img):
    h, s, v = img.convert('HSV').split()
    shift = int(round(rng.uniform(-hue, hue) * 255))
    h = Image.fromarray((np.asarray(h, np.int16) + shift).astype(np.uint8))  # Wraps.
    return Image.merge('HSV', (h, s, v)).convert('RGB')

  adjustments = [(brightness, enhance(ImageEnhance.Brightness, brightness)),
                 (contrast, enhance(ImageEnhance.Contrast, contrast)),
                 (saturation, enhance(ImageEnhance.Color, saturation)), (hue, shift_hue)]
  for i in rng.permutation(len(adjustments)):
    strength, adjust = adjustments[i]
    if strength > 0:  # As torchvision, a zero strength skips the adjustment.
      pil = adjust(pil)
  return np.asarray(pil, np.uint8)


def resize_center_crop(image: np.ndarray, resize: int = _IMAGENET_RESIZE,
                       size: int = _IMAGENET_SIZE) -> np.ndarray:
  """Resizes the shorter side to `resize`, then center-crops `size`."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  pil = Image.fromarray(np.asarray(image, np.uint8)).convert('RGB')
  w, h = pil.size
  s = resize / min(w, h)
  nw, nh = max(size, round(w * s)), max(size, round(h * s))
  pil = pil.resize((nw, nh), Image.BILINEAR)
  x0, y0 = (nw - size) // 2, (nh - size) // 2
  return np.asarray(pil.crop((x0, y0, x0 + size, y0 + size)), np.uint8)


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
  from darts_jax import tfds_builders  # pylint: disable=g-import-not-at-top
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


# ----------------------------------------------------------------------------
# Index arithmetic.


def search_split_random(num_examples: int, train_portion: float = 0.5,
                        seed: int = 0, subset: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
  """A seeded random split of the train set into search-train and search-val.

  Returns two disjoint sorted int64 index arrays: of the first
  m = floor(subset * num_examples) entries of a permutation seeded by `seed`,
  the first floor(train_portion * m) and the rest (with subset 1, all of
  range(num_examples)). PC-DARTS's ImageNet search samples 10% and 2.5% of the
  train set: subset 0.125, train_portion 0.8.
  """
  if not 0.0 < subset <= 1.0:
    raise UserError(f'search_subset must be in (0, 1], got {subset}')
  num_used = int(np.floor(subset * num_examples))
  num_train = _num_search_train(num_used, train_portion)
  perm = np.random.default_rng(seed).permutation(num_examples)[:num_used]
  return np.sort(perm[:num_train]), np.sort(perm[num_train:])


def _num_search_train(num_examples: int, train_portion: float) -> int:
  """floor(train_portion * num_examples), when both parts are non-empty."""
  if not 0.0 < train_portion < 1.0:
    raise UserError(f'train_portion must be in (0, 1), got {train_portion}')
  num_train = int(np.floor(train_portion * num_examples))
  if num_train < 1 or num_train >= num_examples:
    raise UserError(f'cannot split {num_examples} examples with '
                    f'train_portion={train_portion}: a part would be empty')
  return num_train


# config.dataset.search_split: how the train split is divided for a search.
SEARCH_SPLITS: tuple[str, ...] = ('ordered', 'random')


def check_search_split(search_split: str, subset: float = 1.0) -> None:
  """Raises UserError unless `search_split` is one of SEARCH_SPLITS or a split file."""
  if not isinstance(search_split, str) or not search_split:
    raise UserError(f'config.dataset.search_split must be "ordered", "random" or the path '
                    f'of a split file, got {search_split!r}')
  if search_split == 'random':
    return
  if search_split not in SEARCH_SPLITS and not os.path.isfile(os.path.expanduser(search_split)):
    raise UserError(f'config.dataset.search_split {search_split!r} is neither "ordered", '
                    f'"random" nor a file; pass one of those or the path of a split file')
  if subset != 1.0:
    raise UserError(f'config.dataset.search_subset {subset} samples the train split at '
                    f'random: set config.dataset.search_split="random" with it')


def ordered_split(positions: np.ndarray,
                  train_portion: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
  """The DARTS code's split: search-train is the first floor(train_portion * n)
  examples of the train set in the official files' order, search-val the rest.

  `positions[i]` is source record i's position in that order (a permutation of
  range(n)); returns sorted source indices.
  """
  positions = _checked_positions(positions)
  num_train = _num_search_train(len(positions), train_portion)
  return (np.flatnonzero(positions < num_train).astype(np.int64),
          np.flatnonzero(positions >= num_train).astype(np.int64))


def file_split(positions: np.ndarray, path: str) -> tuple[np.ndarray, np.ndarray]:
  """Search-train and search-val from a split file, as sorted source indices.

  The file is JSON with the train set's positions (official order) of each part:
  AutoDL-Projects' NAS-Bench-201 files (`cifar-split.txt`: {"train": ["int",
  ["0", "5", ...]], "valid": ["int", [...]]}) or plain {"train": [0, 5, ...],
  "valid": [...]}.
  """
  positions = _checked_positions(positions)
  path = os.path.expanduser(path)
  try:
    with open(path, encoding='utf-8') as f:
      parts = json.load(f)
    wanted = [_split_file_part(parts, key) for key in ('train', 'valid')]
  except (OSError, ValueError, TypeError, KeyError) as e:
    reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise UserError(f'cannot read the split file {path} ({reason}); it must be JSON with '
                    f'"train" and "valid" lists of train-set positions') from e
  n = len(positions)
  for key, part in zip(('train', 'valid'), wanted):
    if not part.size or part.min() < 0 or part.max() >= n:
      raise UserError(f'the split file {path}\'s "{key}" part is empty or has positions '
                      f'outside 0..{n - 1}: it was written for another data set')
  if np.intersect1d(*wanted).size:
    raise UserError(f'the split file {path}\'s "train" and "valid" parts overlap; pass a '
                    f'file whose parts are disjoint')
  record_at = np.empty(n, np.int64)
  record_at[positions] = np.arange(n)
  return tuple(np.sort(record_at[part]) for part in wanted)


def _split_file_part(parts: dict, key: str) -> np.ndarray:
  part = parts[key]
  if (isinstance(part, list) and len(part) == 2 and isinstance(part[0], str)
      and isinstance(part[1], list)):
    part = part[1]  # AutoDL's typed form: ["int", [values as strings]].
  values = np.asarray([int(v) for v in part], np.int64)
  if np.unique(values).size != values.size:
    raise ValueError(f'"{key}" lists a position twice')
  return values


def _checked_positions(positions) -> np.ndarray:
  positions = np.asarray(positions, np.int64)
  if not np.array_equal(np.sort(positions), np.arange(len(positions))):
    raise UserError('the data source\'s record positions are not a permutation of its '
                    'records; rebuild the data set, or use config.dataset.search_split='
                    '"random"')
  return positions


def search_indices(source: Source, search_split: str, train_portion: float, seed: int,
                   subset: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
  """Search-train and search-val indices of `source` by config.dataset.search_split:
  "ordered" (the DARTS code's split, `ordered_split`), "random" (`search_split`)
  or a split file (`file_split`)."""
  check_search_split(search_split, subset)
  if search_split == 'random':
    return search_split_random(len(source), train_portion, seed, subset)
  positions = getattr(source, 'official_positions', lambda: None)()
  if positions is None:
    raise UserError('this data set\'s records do not say their position in the official '
                    f'files, which config.dataset.search_split={search_split!r} needs: use '
                    'config.dataset.search_split="random", or prepare the data set with '
                    'this project\'s builder (a data_dir without tfds\'s own copy)')
  if search_split == 'ordered':
    return ordered_split(positions, train_portion)
  return file_split(positions, search_split)


def split_digest(*parts: np.ndarray) -> str:
  """A short fingerprint of index arrays (a resumed search checks it is on the same split)."""
  digest = hashlib.sha256()
  for part in parts:
    digest.update(np.asarray(part, np.int64).tobytes())
    digest.update(b'|')
  return digest.hexdigest()[:16]


def epoch_batches(indices: np.ndarray, batch_size: int, seed: int, epoch: int,
                  process_index: int = 0, process_count: int = 1,
                  num_steps: int | None = None) -> np.ndarray:
  """This process's index batches of one epoch.

  The epoch is a permutation of `indices` seeded by (seed, epoch), cut into
  global batches of `batch_size` (the remainder dropped). Each process takes
  its own contiguous slice of every global batch. With `num_steps` the first
  `num_steps` batches; where one permutation has fewer, further ones, seeded by
  (seed, epoch, round), follow (a smaller search-val split is cycled).

  Returns:
    int64 [steps, batch_size // process_count].
  """
  indices = np.asarray(indices, np.int64).reshape(-1)
  if batch_size <= 0 or batch_size % process_count:
    raise UserError(f'batch_size {batch_size} must be a positive multiple of '
                    f'the process count {process_count}')
  if not 0 <= process_index < process_count:
    raise UserError(f'process_index {process_index} is not in '
                    f'[0, {process_count})')
  steps = len(indices) // batch_size
  if steps == 0:
    raise UserError(f'batch_size {batch_size} is larger than the '
                    f'{len(indices)} examples to batch: lower batch_size')
  rounds = 1 if num_steps is None else max(1, -(-num_steps // steps))
  batches = np.concatenate([
      np.random.default_rng([seed, epoch] + ([r] if r else [])).permutation(indices)[
          :steps * batch_size].reshape(steps, batch_size) for r in range(rounds)])
  batches = batches[:num_steps]
  local = batch_size // process_count
  return batches[:, process_index * local:(process_index + 1) * local]


# ----------------------------------------------------------------------------
# Prefetching.


def epoch_loader(source: Source, indices: np.ndarray, batch_size: int, seed: int, epoch: int,
                 num_steps: int, start_step: int = 0, process_index: int = 0,
                 process_count: int = 1) -> BatchLoader:
  """One epoch's loader: that epoch's batch order and, for a source with random host
  preprocessing (ImageNet's crops and flips), that epoch's draws."""
  batches = epoch_batches(indices, batch_size, seed, epoch, process_index, process_count,
                          num_steps)
  return BatchLoader(for_epoch(source, epoch), batches, start_step=start_step)


@dataclasses.dataclass
class _Failure:
  error: BaseException


class BatchLoader:
  """Iterates host batches of `source`, prefetched by a background thread.

  Each iteration starts at `start_step` (for resume) and yields
  {'image': uint8 [b, H, W, C], 'label': int32 [b]} for the remaining rows of
  `index_batches`. `wait_seconds` accumulates the time the consumer waited for
  a batch (input-bound if it grows).
  """

  def __init__(self, source: Source, index_batches: np.ndarray,
               start_step: int = 0, prefetch: int = 3):
    self.source = source
    self.index_batches = np.asarray(index_batches)
    if self.index_batches.ndim != 2:
      raise ValueError('index_batches must be [steps, batch]')
    if not 0 <= start_step <= len(self.index_batches):
      raise UserError(f'start_step {start_step} is outside the '
                      f'{len(self.index_batches)} steps of the epoch')
    self.start_step = start_step
    self.prefetch = prefetch
    self.wait_seconds = 0.0

  def __len__(self) -> int:
    return len(self.index_batches) - self.start_step

  def _produce(self, out: queue.Queue, stop: threading.Event) -> None:
    """Thread body: fills `out` until done or `stop` is set."""

    def put(item: Any) -> bool:
      while not stop.is_set():
        try:
          out.put(item, timeout=0.05)
          return True
        except queue.Full:
          pass
      return False

    try:
      for step in range(self.start_step, len(self.index_batches)):
        images, labels = self.source.get(self.index_batches[step])
        if not put({'image': images, 'label': labels}):
          return
    except BaseException as e:  # pylint: disable=broad-except
      put(_Failure(e))

  def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
    out: queue.Queue = queue.Queue(maxsize=self.prefetch)
    stop = threading.Event()
    thread = threading.Thread(target=self._produce, args=(out, stop),
                              daemon=True, name='BatchLoader')
    thread.start()
    try:
      for _ in range(len(self)):
        start = time.perf_counter()
        item = out.get()
        self.wait_seconds += time.perf_counter() - start
        if isinstance(item, _Failure):
          raise item.error
        yield item
    finally:
      stop.set()
      thread.join(timeout=5)

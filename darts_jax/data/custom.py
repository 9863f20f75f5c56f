"""The user's own images: a folder of class sub-folders, or arrays in an .npz file.

`folder:/path` (or a directory): one sub-folder per class (class names sorted), with
`train/` and `test/` sub-folders each holding the class sub-folders, or without them a
fixed stratified hold-out of `config.dataset.test_fraction` of each class as the test split.
Images are decoded with PIL (tfds's ImageFolder builder needs TensorFlow, which this
project does not use), grey if every image is grey, else RGB. The mean and std are cached
in `<folder>/darts_jax_stats.json` (where the folder is writable).

`npz:/path/file.npz` (or a path ending in .npz): `x_train`, `y_train`, `x_test`, `y_test`,
or `images` and `labels` (then the test split is held out as for a folder); images uint8,
or floats in [0, 1], [n, H, W] or [n, H, W, C]; labels integers >= 0 or strings (class
names sorted); an optional `class_names` array names the integer labels.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import hashlib
import os
import zipfile
from typing import Any

import numpy as np

from darts_jax.data import custom_base as base
from darts_jax.data.datasets import ArraySource, DatasetInfo
from darts_jax.errors import UserError

FOLDER_PREFIX = 'folder:'
NPZ_PREFIX = 'npz:'
_GREY_MODES = frozenset({'1', 'L', 'LA', 'I', 'I;16', 'I;16B', 'I;16L', 'I;16N', 'F'})
_NUM_THREADS = 8


# ----------------------------------------------------------------------------
# Folders.


@dataclasses.dataclass(frozen=True)
class FolderSource:
  """Image files decoded with PIL on access (threads: PIL decodes without the GIL)."""
  paths: tuple[str, ...]
  labels: np.ndarray  # int32 [n]
  shape: tuple[int, int, int]  # (H, W, C) of every image returned.
  resize_to: int = 0  # image_size, or 0 for the files' own (common) size.

  def __len__(self) -> int:
    return len(self.paths)

  def _one(self, index: int) -> np.ndarray:
    from PIL import Image  # pylint: disable=g-import-not-at-top
    path = self.paths[index]
    try:
      with Image.open(path) as image:
        image = image.convert('L' if self.shape[-1] == 1 else 'RGB')
        if self.resize_to:
          image = image.resize((self.resize_to, self.resize_to), Image.BILINEAR)
        return base.as_hwc(np.asarray(image, np.uint8), path)
    except Exception as e:  # pylint: disable=broad-except  # PIL raises many types.
      raise UserError(f'cannot read the image file {path} ({base.first_line(e)}): replace or '
                      f'remove it') from e

  def get(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    indices = [int(i) for i in np.asarray(indices).reshape(-1)]
    with concurrent.futures.ThreadPoolExecutor(_NUM_THREADS) as pool:
      images = list(pool.map(self._one, indices))
    return (base.stack_images(images, self.shape, lambda i: self.paths[indices[i]]),
            self.labels[np.asarray(indices, np.int64)])

  def official_positions(self) -> np.ndarray:
    return np.arange(len(self))  # Stored in a stratified order (`_ordered`).


@dataclasses.dataclass(frozen=True)
class _Folder:
  class_names: tuple[str, ...]
  parts: dict  # 'train'/'test' -> FolderSource
  fingerprint: str  # Of the train part's files and the shape.
  stats_path: str


def _subdirs(path: str) -> list[str]:
  return sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith('.'))


def _image_files(directory: str) -> list[str]:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  extensions = set(Image.registered_extensions())
  found = []
  for dirpath, dirnames, filenames in os.walk(directory):
    dirnames[:] = sorted(d for d in dirnames if not d.startswith('.'))
    found += [os.path.join(dirpath, f) for f in sorted(filenames)
              if not f.startswith('.') and os.path.splitext(f)[1].lower() in extensions]
  return found


def _header(path: str) -> tuple[tuple[int, int], str]:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  try:
    with Image.open(path) as image:
      return (image.height, image.width), image.mode
  except Exception as e:  # pylint: disable=broad-except
    raise UserError(f'cannot read the image file {path} ({base.first_line(e)}): replace or '
                    f'remove it') from e


def _class_files(split_root: str, classes: list[str]) -> tuple[list[str], list[int]]:
  paths, labels = [], []
  for label, name in enumerate(classes):
    files = _image_files(os.path.join(split_root, name))
    if not files:
      raise UserError(f'the class folder {os.path.join(split_root, name)} holds no image '
                      f'files: add images or remove it')
    paths += files
    labels += [label] * len(files)
  return paths, labels


def _ordered(paths: list[str], labels: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
  order = base.stratified_order(labels)
  return tuple(paths[i] for i in order), labels[order].astype(np.int32)


def _stamp(root: str) -> tuple[int, ...]:
  """The modification times of `root`'s directories: they change as files come and go."""
  return tuple(os.stat(d).st_mtime_ns for d, _, _ in os.walk(root))


@functools.lru_cache(maxsize=4)
def _scan(root: str, size: int, fraction: float, stamp: tuple[int, ...]) -> _Folder:
  """`root`'s images, split and ordered; `fraction` is used where there is no test/."""
  del stamp  # Only the cache key.
  what = f'the image folder {root}'
  if not os.path.isdir(root):
    raise UserError(f'{what} does not exist or is not a directory')
  train_root, test_root = root, None
  if os.path.isdir(os.path.join(root, 'train')):
    train_root = os.path.join(root, 'train')
    test_root = os.path.join(root, 'test') if os.path.isdir(os.path.join(root, 'test')) else None
  elif os.path.isdir(os.path.join(root, 'test')):
    raise UserError(f'{what} has a test/ but no train/ sub-folder: add train/ with the '
                    f'same class sub-folders')
  classes = _subdirs(train_root)
  if not classes:
    raise UserError(f'{what} has no class sub-folders: put the images of each class in a '
                    f'sub-folder of {train_root} named after the class')
  base.check_classes(len(classes), what, f' ({classes[0]})', 'class sub-folders')
  paths, labels = _class_files(train_root, classes)
  test_paths, test_labels = [], []
  if test_root is not None:
    extra = sorted(set(_subdirs(test_root)) - set(classes))
    if extra:
      raise UserError(f'{test_root} has the class folder {extra[0]!r}, which '
                      f'{train_root} lacks: the test classes must be train classes')
    present = [c for c in classes if os.path.isdir(os.path.join(test_root, c))]
    if not present:
      raise UserError(f'{test_root} has no class sub-folders: put the test images of each '
                      f'class in a sub-folder named as in {train_root}')
    files, local = _class_files(test_root, present)
    test_paths, test_labels = files, [classes.index(present[i]) for i in local]
  with concurrent.futures.ThreadPoolExecutor(_NUM_THREADS) as pool:
    headers = list(pool.map(_header, paths + test_paths))
  channels = 1 if all(mode in _GREY_MODES for _, mode in headers) else 3
  if size:
    shape = (size, size, channels)
  else:
    sizes = {}
    for path, (hw, _) in zip(paths + test_paths, headers):
      sizes.setdefault(hw, path)
    if len(sizes) > 1:
      (a, a_path), (b, b_path) = list(sizes.items())[:2]
      raise UserError(f'{what} has images of mixed sizes ({a_path} is {a[0]}x{a[1]}, '
                      f'{b_path} is {b[0]}x{b[1]}): set config.dataset.image_size to '
                      f'resize them all to one square size')
    shape = next(iter(sizes)) + (channels,)
  labels = np.asarray(labels, np.int64)
  if test_root is None:
    base.holdout_note(what, fraction)
    train_idx, test_idx = base.stratified_holdout(labels, fraction)
    test_paths, test_labels = [paths[i] for i in test_idx], labels[test_idx]
    paths, labels = [paths[i] for i in train_idx], labels[train_idx]
  parts = {}
  for split, (p, l) in (('train', (paths, labels)),
                        ('test', (test_paths, np.asarray(test_labels, np.int64)))):
    p, l = _ordered(list(p), l)
    parts[split] = FolderSource(p, l, shape, size)
  digest = hashlib.sha256(repr((shape, size, fraction if test_root is None else 0)).encode())
  for path in parts['train'].paths:
    stat = os.stat(path)
    digest.update(f'{os.path.relpath(path, root)}|{stat.st_size}|{stat.st_mtime_ns}\n'.encode())
  return _Folder(tuple(classes), parts, digest.hexdigest()[:32],
                 os.path.join(root, base.STATS_FILE))


def _folder(name: str, dataset_config: Any) -> _Folder:
  path = name[len(FOLDER_PREFIX):] if name.startswith(FOLDER_PREFIX) else name
  root = os.path.abspath(os.path.expanduser(path))
  size = base.image_size(dataset_config)
  has_test = os.path.isdir(os.path.join(root, 'train')) and os.path.isdir(
      os.path.join(root, 'test'))
  fraction = 0.0 if has_test else base.holdout_fraction(
      dataset_config, f'the image folder {root}')
  return _scan(root, size, fraction, _stamp(root))


def folder_info(name: str, dataset_config: Any) -> DatasetInfo:
  folder = _folder(name, dataset_config)
  train = folder.parts['train']
  key = f'folder|{train.shape[0]}x{train.shape[1]}x{train.shape[2]}'
  mean, std = base.cached_stats(folder.stats_path, key, {'files': folder.fingerprint},
                                lambda: base.channel_stats(train, train.shape[-1]),
                                train.shape[-1])
  return DatasetInfo(name, len(folder.class_names), train.shape, mean, std, len(train),
                     len(folder.parts['test']), class_names=folder.class_names)


def folder_split(name: str, dataset_config: Any, split: str) -> FolderSource:
  return _folder(name, dataset_config).parts[split]


# ----------------------------------------------------------------------------
# .npz arrays.


def _npz_images(x: np.ndarray, key: str, path: str) -> np.ndarray:
  what = f'{path}\'s {key}'
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4 or not 1 <= x.shape[-1] <= 4:
    raise UserError(f'{what} has shape {x.shape}: images must be [n, H, W] or '
                    f'[n, H, W, C] with C 1 to 4 (channels last)')
  if x.dtype == np.uint8:
    return x
  if x.dtype.kind in 'iu' and (not x.size or (x.min() >= 0 and x.max() <= 255)):
    return x.astype(np.uint8)
  if x.dtype.kind == 'f' and np.all(np.isfinite(x)) and (
      not x.size or (x.min() >= 0.0 and x.max() <= 1.0)):
    return np.rint(x.astype(np.float32, copy=False) * np.float32(255.0)).astype(np.uint8)
  raise UserError(f'{what} ({x.dtype}) must be uint8, or floats in [0, 1]; scale the '
                  f'images to one of those')


def _npz_labels(parts: list[np.ndarray], keys: list[str], names: np.ndarray | None,
                path: str) -> tuple[list[np.ndarray], tuple[str, ...]]:
  """Labels as int32 0..K-1, and the class names."""
  for y, key in zip(parts, keys):
    if y.ndim != 1 or y.dtype.kind not in 'iuUSf' or (
        y.dtype.kind == 'f' and not np.all(np.mod(y, 1) == 0)):
      raise UserError(f'{path}\'s {key} ({y.dtype} {y.shape}) must be a 1-D array of '
                      f'integer class indices or of class names')
  if parts[0].dtype.kind in 'US':
    classes = np.unique(np.concatenate(parts))
    return ([np.searchsorted(classes, y).astype(np.int32) for y in parts],
            tuple(str(c.decode() if isinstance(c, bytes) else c) for c in classes))
  labels = [y.astype(np.int64) for y in parts]
  low = min(int(y.min()) for y in labels if y.size)
  if low < 0:
    raise UserError(f'{path} has the label {low}: integer labels must be class indices >= 0')
  num_classes = max(int(y.max()) for y in labels if y.size) + 1
  if names is not None:
    if len(names) < num_classes:
      raise UserError(f'{path}\'s class_names has {len(names)} names for labels up to '
                      f'{num_classes - 1}: name every class')
    return [y.astype(np.int32) for y in labels], tuple(str(n) for n in names)
  return [y.astype(np.int32) for y in labels], tuple(str(i) for i in range(num_classes))


@functools.lru_cache(maxsize=2)
def _npz(path: str, size: int, fraction: float, stamp: tuple[int, int]) -> tuple:
  """(train, test, class_names, mean, std) of the .npz at `path`."""
  del stamp  # Only the cache key: the file's (mtime, size).
  try:
    with np.load(path, allow_pickle=False) as z:
      keys = set(z.files)
      split = {'x_train', 'y_train', 'x_test', 'y_test'}
      whole = {'images', 'labels'}
      if not (split <= keys or whole <= keys):
        wanted = split if keys & split else whole if keys & whole else split | whole
        raise UserError(f'{path} lacks {", ".join(sorted(wanted - keys))}: an .npz needs '
                        f'x_train, y_train, x_test and y_test, or images and labels (it has '
                        f'{", ".join(sorted(keys)) or "no arrays"})')
      image_keys = ['x_train', 'x_test'] if split <= keys else ['images']
      label_keys = [k.replace('x_', 'y_') if k != 'images' else 'labels' for k in image_keys]
      images = [_npz_images(z[k], k, path) for k in image_keys]
      labels = [z[k] for k in label_keys]
      names = z['class_names'] if 'class_names' in keys else None
  except (OSError, ValueError, EOFError) as e:
    raise UserError(f'cannot read {path} ({base.first_line(e)}): write it with numpy.savez, '
                    f'without object arrays') from e
  for x, y, key in zip(images, labels, label_keys):
    if len(x) != len(y):
      raise UserError(f'{path} has {len(x)} images but {len(y)} {key}: one label per image')
  labels, class_names = _npz_labels(labels, label_keys, names, path)
  base.check_classes(len(np.unique(np.concatenate(labels))), path)
  if size:
    images = [np.stack([base.resize(i, size) for i in x]) if len(x) else
              np.zeros((0, size, size, x.shape[-1]), np.uint8) for x in images]
  if len(images) == 1:
    base.holdout_note(path, fraction)
    train_idx, test_idx = base.stratified_holdout(labels[0], fraction)
    images = [images[0][train_idx], images[0][test_idx]]
    labels = [labels[0][train_idx], labels[0][test_idx]]
  if images[0].shape[1:] != images[1].shape[1:]:
    raise UserError(f'{path}\'s test images are {images[1].shape[1:]}, its train images '
                    f'{images[0].shape[1:]}: set config.dataset.image_size to resize all '
                    f'to one square size')
  train, test = ArraySource(images[0], labels[0]), ArraySource(images[1], labels[1])
  mean, std, _ = base.channel_stats(train, images[0].shape[-1])
  return train, test, class_names, mean, std


def _load_npz(name: str, dataset_config: Any) -> tuple:
  path = name[len(NPZ_PREFIX):] if name.startswith(NPZ_PREFIX) else name
  path = os.path.abspath(os.path.expanduser(path))
  try:
    stat = os.stat(path)
  except OSError as e:
    raise UserError(f'cannot read {path} ({e.strerror or e}): pass an existing .npz file '
                    f'as config.dataset.name="npz:/path/file.npz"') from e
  if not zipfile.is_zipfile(path):
    raise UserError(f'{path} is not an .npz file: write it with numpy.savez')
  with zipfile.ZipFile(path) as z:
    has_test = {'x_test.npy', 'y_test.npy'} <= set(z.namelist())
  fraction = 0.0 if has_test else base.holdout_fraction(dataset_config, path)
  return _npz(path, base.image_size(dataset_config), fraction,
              (stat.st_mtime_ns, stat.st_size))


def npz_info(name: str, dataset_config: Any) -> DatasetInfo:
  train, test, class_names, mean, std = _load_npz(name, dataset_config)
  return DatasetInfo(name, len(class_names), tuple(train.images.shape[1:]), mean, std,
                     len(train), len(test), class_names=class_names)


def npz_split(name: str, dataset_config: Any, split: str) -> ArraySource:
  train, test, *_ = _load_npz(name, dataset_config)
  if split != 'train':
    return test
  # A search config's 'ordered' split takes the file's first and second part: with the
  # labels sorted by class, those would hold different classes.
  labels = train.labels
  if (base.config_field(dataset_config, 'search_split', None) == 'ordered'
      and len(np.unique(labels)) > 1 and np.all(np.diff(labels) >= 0)):
    raise UserError(f'{name}\'s train labels are sorted by class, so config.dataset.'
                    f'search_split="ordered" (the first and the second part of the file) '
                    f'would split it by class: set search_split="random", or shuffle the arrays')
  return train

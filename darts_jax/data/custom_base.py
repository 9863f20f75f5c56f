"""Pieces shared by the user's own data sets (`custom`, `tfds_any`): resizing, per-channel
statistics and their JSON cache, the stratified test hold-out, a subset source.

Reads the dataset config (an ml_collections ConfigDict or a dict):
  * `image_size` (int, default 0): resize every image to image_size x image_size (aspect
    not kept); 0 keeps the data's own size, which must then be the same for all images.
  * `test_fraction` (float, default 0.2): the part of each class held out as the test
    split of a data set that has none.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from darts_jax.errors import UserError
from darts_jax.files import write_atomic

# Seed of the test hold-out of a data set without a test split. Fixed, not config.seed:
# the search and every evaluation must see the same test split, whatever their seeds
# (never change it: results depend on it).
HOLDOUT_SEED = 20240611
# Seed of the record order of a folder (a stratified interleave of its classes).
ORDER_SEED = 20240612
# Mean and std are computed over at most this many train images (evenly spaced).
MAX_STATS_EXAMPLES = 50_000
STATS_FILE = 'darts_jax_stats.json'
_STATS_BATCH = 256

_noted: set[str] = set()


def config_field(dataset_config: Any, key: str, default: Any) -> Any:
  getter = getattr(dataset_config, 'get', None)
  return getter(key, default) if getter is not None else getattr(dataset_config, key, default)


def image_size(dataset_config: Any) -> int:
  """config.dataset.image_size as an int >= 0 (0: keep the data's own size)."""
  size = config_field(dataset_config, 'image_size', 0) or 0
  if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 0:
    raise UserError(f'config.dataset.image_size must be a whole number of pixels >= 0 '
                    f'(0 keeps the images\' own size), got {size!r}')
  return int(size)


def holdout_fraction(dataset_config: Any, what: str) -> float:
  """config.dataset.test_fraction, checked, for `what`, which has no test split."""
  fraction = config_field(dataset_config, 'test_fraction', 0.2)
  if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not (
      0.0 < fraction < 1.0):
    raise UserError(f'{what} has no test split, so one is held out of its train data: '
                    f'config.dataset.test_fraction must be in (0, 1), got {fraction!r}')
  return float(fraction)


def first_line(e: BaseException) -> str:
  """An exception's first line (its type where it has no message)."""
  return (str(e).strip().splitlines() or [type(e).__name__])[0]


def note_once(message: str) -> None:
  """Prints a one-line note to stderr, once per process."""
  if message not in _noted:
    _noted.add(message)
    print(f'note: {message}', file=sys.stderr, flush=True)


def holdout_note(what: str, fraction: float) -> None:
  note_once(f'{what} has no test split: its test split is a fixed stratified '
            f'{fraction:.0%} of each class (config.dataset.test_fraction={fraction:g}); '
            f'the search and the training read only the other {1 - fraction:.0%}')


def check_classes(num_classes: int, what: str, detail: str = '',
                  needs: str = 'classes') -> None:
  if num_classes < 2:
    raise UserError(f'{what} has one class only{detail}: a classifier needs two or more '
                    f'{needs}')


# ----------------------------------------------------------------------------
# Images.


def as_hwc(image: np.ndarray, what: str) -> np.ndarray:
  """[H, W] or [H, W, C] uint8 as [H, W, C]."""
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[..., None]
  if image.ndim != 3 or image.dtype != np.uint8:
    raise UserError(f'{what} is not a uint8 image [H, W] or [H, W, C] (got {image.dtype} '
                    f'{image.shape})')
  return image


def resize(image: np.ndarray, size: int) -> np.ndarray:
  """uint8 [H, W, C] resized to [size, size, C] (bilinear, aspect not kept)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  if image.shape[:2] == (size, size):
    return image
  channels = image.shape[-1]
  if channels == 3:
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
  planes = [np.asarray(Image.fromarray(image[..., c]).resize((size, size), Image.BILINEAR))
            for c in range(channels)]
  return np.stack(planes, axis=-1)


def stack_images(images: Sequence[np.ndarray], shape: tuple[int, int, int],
                 what: Callable[[int], str]) -> np.ndarray:
  """Stacks [H, W, C] images of `shape`; a UserError names the first that is not."""
  for i, image in enumerate(images):
    if image.shape != shape:
      raise UserError(f'{what(i)} is {image.shape[0]}x{image.shape[1]}x{image.shape[2]}, '
                      f'not {shape[0]}x{shape[1]}x{shape[2]} like the others: set '
                      f'config.dataset.image_size to resize all images to one square size')
  if not images:
    return np.zeros((0,) + shape, np.uint8)
  return np.stack(images)


# ----------------------------------------------------------------------------
# Splits.


def stratified_holdout(labels: np.ndarray, fraction: float,
                       seed: int = HOLDOUT_SEED) -> tuple[np.ndarray, np.ndarray]:
  """Sorted (train, test) indices: of each class's n examples floor(fraction * n + 0.5) go
  to test (at least 1 and at most n - 1 where n >= 2; none where n is 1), chosen by a
  permutation seeded by (seed, class)."""
  labels = np.asarray(labels).reshape(-1)
  test = []
  for c in np.unique(labels):
    members = np.flatnonzero(labels == c)
    n = len(members)
    k = 0 if n < 2 else min(max(int(np.floor(fraction * n + 0.5)), 1), n - 1)
    test.append(np.random.default_rng([seed, int(c)]).permutation(members)[:k])
  test = np.sort(np.concatenate(test)).astype(np.int64) if test else np.zeros(0, np.int64)
  train = np.setdiff1d(np.arange(len(labels)), test).astype(np.int64)
  return train, test


def stratified_order(labels: np.ndarray, seed: int = ORDER_SEED) -> np.ndarray:
  """A fixed order of the examples in which every prefix holds each class in proportion:
  each class's examples, permuted by (seed, class), sit at fractions (j + 0.5) / n of the
  order. A folder has no official order; with this one the search's 'ordered' split
  (first and second part) has every class in both parts."""
  labels = np.asarray(labels).reshape(-1)
  keys = np.zeros(len(labels))
  for c in np.unique(labels):
    members = np.random.default_rng([seed, int(c)]).permutation(np.flatnonzero(labels == c))
    keys[members] = (np.arange(len(members)) + 0.5) / len(members)
  return np.lexsort((labels, keys)).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class SubsetSource:
  """The examples of `parent` at `indices`, in that order (their official order)."""
  parent: Any
  indices: np.ndarray

  def __len__(self) -> int:
    return len(self.indices)

  def get(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return self.parent.get(self.indices[np.asarray(indices, np.int64)])

  def official_positions(self) -> np.ndarray:
    return np.arange(len(self))


@dataclasses.dataclass(frozen=True)
class ResizedSource:
  """`parent`'s images resized to size x size."""
  parent: Any
  size: int

  def __len__(self) -> int:
    return len(self.parent)

  def get(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    images, labels = self.parent.get(indices)
    out = [resize(image, self.size) for image in images]
    shape = (self.size, self.size, images.shape[-1])
    return (np.stack(out) if out else np.zeros((0,) + shape, np.uint8)), labels

  def official_positions(self) -> np.ndarray | None:
    return getattr(self.parent, 'official_positions', lambda: None)()


# ----------------------------------------------------------------------------
# Statistics.


def channel_stats(source: Any, channels: int) -> tuple[tuple[float, ...], tuple[float, ...], int]:
  """Per-channel mean and std of the images scaled to [0, 1], over at most
  MAX_STATS_EXAMPLES evenly spaced examples; returns (mean, std, examples used)."""
  n = len(source)
  used = min(n, MAX_STATS_EXAMPLES)
  indices = np.unique(np.linspace(0, n - 1, used).round().astype(np.int64)) if n else (
      np.zeros(0, np.int64))
  total = np.zeros(channels)
  total_sq = np.zeros(channels)
  count = 0
  for start in range(0, len(indices), _STATS_BATCH):
    images, _ = source.get(indices[start:start + _STATS_BATCH])
    x = images.reshape(-1, channels).astype(np.float64) / 255.0
    total += x.sum(0)
    total_sq += np.square(x).sum(0)
    count += len(x)
  mean = total / max(count, 1)
  std = np.sqrt(np.maximum(total_sq / max(count, 1) - np.square(mean), 0.0))
  std = np.where(std > 1e-6, std, 1.0)  # A constant channel: leave it unscaled.
  return tuple(float(v) for v in mean), tuple(float(v) for v in std), len(indices)


def cached_stats(path: str | None, key: str, fingerprint: Mapping[str, Any],
                 compute: Callable[[], tuple[tuple[float, ...], tuple[float, ...], int]],
                 channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """(mean, std) from the JSON cache at `path` under `key` when its `fingerprint` matches,
  else computed and written there (atomically; no cache where `path` is None or cannot be
  written)."""
  entries: dict[str, Any] = {}
  if path is not None:
    try:
      with open(path, encoding='utf-8') as f:
        entries = json.load(f)
      if not isinstance(entries, dict):
        entries = {}
    except (OSError, ValueError):
      entries = {}
    entry = entries.get(key)
    if (isinstance(entry, dict) and entry.get('fingerprint') == dict(fingerprint)
        and len(entry.get('mean', ())) == channels and len(entry.get('std', ())) == channels):
      return tuple(map(float, entry['mean'])), tuple(map(float, entry['std']))
  mean, std, used = compute()
  if path is not None:
    entries[key] = {'fingerprint': dict(fingerprint), 'mean': list(mean), 'std': list(std),
                    'examples_used': used}
    payload = (json.dumps(entries, indent=1, sort_keys=True) + '\n').encode('utf-8')
    try:
      write_atomic(path, lambda f: f.write(payload))
    except OSError as e:
      note_once(f'could not cache the image statistics in {path} ({e.strerror or e}); '
                f'they are computed again next time')
  return mean, std

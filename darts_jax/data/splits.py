"""The search split: the train set divided into search-train and search-val.

`config.dataset.search_split`: 'ordered' (the DARTS code's first and second half of the
official order), 'random' (seeded, optionally of a random subset) or a split file.
"""

import hashlib
import json
import os

import numpy as np

from darts_jax.data.datasets import Source
from darts_jax.errors import UserError


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

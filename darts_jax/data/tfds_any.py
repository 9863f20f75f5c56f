"""Any tfds image-classification data set by its tfds name ('eurosat/rgb', 'beans:0.1.0',
a data set of your own builder), prepared as array_record under data_dir.

The image and label features are found in the builder's info (read offline from the
prepared `dataset_info.json`): the supervised keys where they are an image and a
ClassLabel, else the ClassLabel feature and the Image feature (or a uint8 [H, W(, C)]
Tensor), preferring those named 'label' and 'image'. num_classes and the class names come
from the ClassLabel. The test split is 'test', else 'validation', else a fixed stratified
hold-out of `config.dataset.test_fraction` of 'train'. The per-channel mean and std of
the train images (as fed: resized to `config.dataset.image_size` where set) are computed
once and cached in `<data_dir>/<name>/<version>/darts_jax_stats.json`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from darts_jax.data import custom_base as base
from darts_jax.data.datasets import DATASETS, DatasetInfo, get_examples
from darts_jax.errors import UserError

_LABEL_BATCH = 1024


@dataclasses.dataclass(frozen=True)
class TfdsImageSource:
  """A tfds data source's (image, label) features as uint8 [n, H, W, C] and int32 [n]."""
  data_source: Any
  image_key: str
  label_key: str
  shape: tuple[int, int, int]
  resize_to: int = 0
  what: str = ''

  def __len__(self) -> int:
    return len(self.data_source)

  def get(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    indices = np.asarray(indices, np.int64).reshape(-1)
    examples = get_examples(self.data_source, indices)
    images = []
    for e in examples:
      image = base.as_hwc(e[self.image_key], f'{self.what}\'s {self.image_key!r} feature')
      images.append(base.resize(image, self.resize_to) if self.resize_to else image)
    labels = np.asarray([e[self.label_key] for e in examples], np.int32).reshape(-1)
    return base.stack_images(images, self.shape,
                             lambda i: f'{self.what}\'s record {indices[i]}'), labels

  def official_positions(self) -> np.ndarray:
    # tfds shuffles the records once, at preparation: the stored order is a fixed one.
    return np.arange(len(self))


@dataclasses.dataclass(frozen=True)
class _Spec:
  name: str
  data_dir: str
  image_key: str
  label_key: str
  shape: tuple[int, int, int]
  size: int
  class_names: tuple[str, ...]
  splits: tuple[str, ...]  # As the prepared info lists them; () if it lists none (mock).
  version_dir: str

  @property
  def what(self) -> str:
    return f'the tfds data set {self.name}'


def _is_image(feature: Any) -> bool:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  if isinstance(feature, tfds.features.Image):
    return True
  return (isinstance(feature, tfds.features.Tensor) and feature.np_dtype == np.uint8
          and len(feature.shape) in (2, 3))


def _pick(features: Any, test, preferred: str, supervised: str | None) -> str | None:
  keys = [k for k in features.keys() if test(features[k])]
  for key in (supervised, preferred):
    if key in keys:
      return key
  return sorted(keys)[0] if keys else None


def _spec(name: str, dataset_config: Any, data_dir: str) -> _Spec:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    builder = tfds.builder(name, data_dir=data_dir)
    info = builder.info
  except Exception as e:  # pylint: disable=broad-except  # tfds raises many types.
    raise UserError(f'unknown dataset {name!r}: not a built-in name ({", ".join(DATASETS)}), '
                    f'a folder ("folder:/path"), an .npz ("npz:/path/file.npz"), nor a tfds '
                    f'data set registered or prepared under {data_dir} '
                    f'({base.first_line(e)})') from e
  what = f'the tfds data set {name}'
  features = info.features
  supervised = tuple(info.supervised_keys or ())
  if not (len(supervised) == 2 and all(isinstance(k, str) for k in supervised)):
    supervised = (None, None)
  if not hasattr(features, 'keys'):
    raise UserError(f'{what} has no image and label features (its features are '
                    f'{type(features).__name__}): it is not an image-classification data set')
  label_key = _pick(features, lambda f: isinstance(f, tfds.features.ClassLabel), 'label',
                    supervised[1])
  image_key = _pick(features, _is_image, 'image', supervised[0])
  listed = ', '.join(sorted(features.keys()))
  if label_key is None:
    raise UserError(f'{what} has no label feature (a tfds ClassLabel; its features: '
                    f'{listed}): it is not an image-classification data set')
  if image_key is None:
    raise UserError(f'{what} has no image feature (a tfds Image or a uint8 [H, W(, C)] '
                    f'Tensor; its features: {listed}): it is not an image data set')
  label = features[label_key]
  names = tuple(label.names) if label.names else tuple(str(i) for i in range(label.num_classes))
  base.check_classes(label.num_classes, what)
  shape = tuple(features[image_key].shape)
  height, width = shape[:2]
  channels = (shape[2] if len(shape) == 3 else 1) or 3
  size = base.image_size(dataset_config)
  if size:
    height = width = size
  elif height is None or width is None:
    raise UserError(f'{what}\'s images have no fixed size ({image_key!r} is '
                    f'{shape}, images of mixed sizes): set config.dataset.image_size to '
                    f'resize them all to one square size')
  return _Spec(name, data_dir, image_key, label_key, (height, width, channels), size, names,
               tuple(info.splits.keys()), os.fspath(builder.data_dir))


def _data_source(spec: _Spec, split: str, skip_images: bool = False) -> Any:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  decoders = {spec.image_key: tfds.decode.SkipDecoding()} if skip_images else None
  try:
    return tfds.data_source(spec.name, split=split, data_dir=spec.data_dir, download=False,
                            decoders=decoders)
  except Exception as e:  # pylint: disable=broad-except
    problem = (f'cannot read its {split} split ({base.first_line(e).rstrip(":")})'
               if os.path.isdir(spec.version_dir) else f'is not prepared under {spec.data_dir}')
    raise UserError(f'{spec.what} {problem}: prepare it as array_record on a machine with '
                    f'TensorFlow (`tfds build {spec.name} --data_dir={spec.data_dir} '
                    f'--file_format=array_record`), then rerun') from e


def _labels(spec: _Spec, split: str) -> np.ndarray:
  """All labels of `split`, reading the records without decoding the images."""
  for skip in (True, False):  # tfds's mock data cannot skip the decoding.
    try:
      source = _data_source(spec, split, skip_images=skip)
      labels = [np.asarray([e[spec.label_key] for e in get_examples(
          source, np.arange(start, min(start + _LABEL_BATCH, len(source))))])
                for start in range(0, len(source), _LABEL_BATCH)]
      return np.concatenate(labels).astype(np.int64) if labels else np.zeros(0, np.int64)
    except UserError:
      raise
    except Exception:  # pylint: disable=broad-except
      if not skip:
        raise
  raise AssertionError('unreachable')


def _parts(spec: _Spec, dataset_config: Any) -> tuple[str, str, float]:
  """The tfds splits read as 'train' and 'test', and the hold-out fraction (0: none)."""
  if spec.splits and 'train' not in spec.splits:
    raise UserError(f'{spec.what} has no train split (its splits: {", ".join(spec.splits)}): '
                    f'this project needs one to search and train on')
  if not spec.splits or 'test' in spec.splits:
    return 'train', 'test', 0.0
  if 'validation' in spec.splits:
    base.note_once(f'{spec.what} has no test split: its validation split is used as the '
                   f'test split')
    return 'train', 'validation', 0.0
  fraction = base.holdout_fraction(dataset_config, spec.what)
  base.holdout_note(spec.what, fraction)
  return 'train', 'train', fraction


def _sources(spec: _Spec, dataset_config: Any) -> tuple[Any, Any]:
  """The 'train' and 'test' sources."""
  train_split, test_split, fraction = _parts(spec, dataset_config)
  train, test = (TfdsImageSource(_data_source(spec, s), spec.image_key, spec.label_key,
                                 spec.shape, spec.size, spec.what)
                 for s in (train_split, test_split))
  if not fraction:
    return train, test
  train_idx, test_idx = base.stratified_holdout(_labels(spec, train_split), fraction)
  return base.SubsetSource(train, train_idx), base.SubsetSource(test, test_idx)


def tfds_info(name: str, dataset_config: Any, data_dir: str) -> DatasetInfo:
  spec = _spec(name, dataset_config, data_dir)
  train, test = _sources(spec, dataset_config)
  fraction = _parts(spec, dataset_config)[2]
  # Cached only beside a prepared data set (not, e.g., for tfds's mock data).
  prepared = os.path.isfile(os.path.join(spec.version_dir, 'dataset_info.json'))
  path = os.path.join(spec.version_dir, base.STATS_FILE) if prepared else None
  key = (f'train|{spec.image_key}|{spec.shape[0]}x{spec.shape[1]}x{spec.shape[2]}'
         f'|holdout={fraction:g}')
  mean, std = base.cached_stats(path, key, {'num_examples': len(train)},
                                lambda: base.channel_stats(train, spec.shape[-1]),
                                spec.shape[-1])
  return DatasetInfo(name, len(spec.class_names), spec.shape, mean, std, len(train),
                     len(test), class_names=spec.class_names)


def tfds_split(name: str, dataset_config: Any, data_dir: str, split: str) -> Any:
  train, test = _sources(_spec(name, dataset_config, data_dir), dataset_config)
  return train if split == 'train' else test

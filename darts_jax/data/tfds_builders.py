"""tfds builders owned by darts_jax: CIFAR-10/100 and (Fashion-)MNIST.

They read the official archives, so they can be prepared without TensorFlow
(tfds's own `cifar10` and `mnist` builders need `tf.io.gfile` to prepare) and
fully offline from `<data_dir>/downloads/manual/`. Data is written as
array_record, which `builder.as_data_source()` reads with random access.
Images are `tfds.features.Tensor` uint8 stored as raw bytes, labels int64.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import tarfile
from typing import Any, Iterator

import numpy as np
import requests
import tensorflow_datasets as tfds

_CIFAR_HOMEPAGE = 'https://www.cs.toronto.edu/~kriz/cifar.html'
_CIFAR_RECORD_PIXELS = 32 * 32 * 3


@dataclasses.dataclass(frozen=True)
class ArchiveSpec:
  """Where a builder's raw files come from.

  Attributes:
    files: file names of the archive(s), looked up in the manual dir first.
    urls: official download URLs, in the same order as `files`.
  """
  files: tuple[str, ...]
  urls: tuple[str, ...]

  def help_text(self) -> str:
    """Human readable `file (url)` list."""
    return ', '.join(f'{f} ({u})' for f, u in zip(self.files, self.urls))

  def instructions(self) -> str:
    """tfds `MANUAL_DOWNLOAD_INSTRUCTIONS` text."""
    return f'Copy {self.help_text()} into the manual dir.'


def url_reachable(url: str, timeout: float = 5.0) -> bool:
  """Whether `url` answers a HEAD request within `timeout` seconds.

  tfds's download manager retries a dead network for minutes; this probe
  lets callers fail fast instead.
  """
  try:
    response = requests.head(url, timeout=timeout, allow_redirects=True)
  except (requests.RequestException, OSError):
    return False
  return response.status_code < 400


def _fetch(dl_manager: Any, spec: ArchiveSpec) -> list[str]:
  """Paths of the archive files: from the manual dir, else downloaded."""
  try:
    manual_dir = os.fspath(dl_manager.manual_dir)
  except AssertionError:  # tfds asserts when the manual dir is missing/empty.
    manual_dir = None
  paths = []
  for name, url in zip(spec.files, spec.urls):
    path = os.path.join(manual_dir, name) if manual_dir else None
    if path and os.path.exists(path):
      paths.append(path)
    elif not url_reachable(url):
      raise ConnectionError(f'{name} is not in the manual dir {manual_dir} '
                            f'and {url} cannot be reached')
    else:
      paths.append(os.fspath(dl_manager.download(url)))
  return paths


def _cifar_records(
    archive: str, prefix: str, names: tuple[str, ...], label_bytes: int,
    label_offset: int
) -> Iterator[tuple[str, dict[str, Any]]]:
  """Yields (key, example) from CIFAR binary files inside a .tar.gz."""
  record_len = label_bytes + _CIFAR_RECORD_PIXELS
  wanted = {prefix + n: n for n in names}
  contents = {}
  with tarfile.open(archive, 'r:gz') as tar:
    for member in tar:
      name = wanted.get(member.name)
      if name is not None:
        contents[name] = np.frombuffer(tar.extractfile(member).read(), np.uint8)
  missing = [n for n in names if n not in contents]
  if missing:
    raise ValueError(f'{archive} lacks {prefix}{missing[0]}: not the official '
                     'CIFAR binary archive')
  # In the order of `names` (the official order), whatever the archive's member order.
  for name in names:
    data = contents.pop(name)
    if data.size % record_len:
      raise ValueError(f'{archive}:{prefix}{name} is not a CIFAR binary file '
                       f'(size {data.size} not a multiple of {record_len})')
    records = data.reshape(-1, record_len)
    labels = records[:, label_offset].astype(np.int64)
    images = records[:, label_bytes:].reshape(-1, 3, 32, 32)
    images = images.transpose(0, 2, 3, 1)
    for i in range(len(records)):
      yield f'{name}_{i}', {'image': images[i], 'label': labels[i]}


class _CifarBase(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Shared CIFAR logic; subclasses set the class attributes below."""

  VERSION = tfds.core.Version('1.1.0')
  RELEASE_NOTES = {'1.0.0': 'Generated from the official binary archive.',
                   '1.1.0': 'Records in the official order (no shuffling), so a search can '
                            'split them as the DARTS code does.'}
  NUM_CLASSES: int
  ARCHIVE: ArchiveSpec
  PREFIX: str
  TRAIN_FILES: tuple[str, ...]
  TEST_FILES: tuple[str, ...]
  LABEL_BYTES: int
  LABEL_OFFSET: int

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=f'{self.ARCHIVE.files[0]} as uint8 HWC images.',
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Tensor(
                shape=(32, 32, 3), dtype=np.uint8,
                encoding=tfds.features.Encoding.BYTES),
            'label': tfds.features.Tensor(shape=(), dtype=np.int64),
        }),
        supervised_keys=('image', 'label'),
        disable_shuffling=True,
        homepage=_CIFAR_HOMEPAGE,
    )

  def _split_generators(self, dl_manager: Any) -> dict[str, Any]:
    (archive,) = _fetch(dl_manager, self.ARCHIVE)
    return {
        'train': self._generate_examples(archive, self.TRAIN_FILES),
        'test': self._generate_examples(archive, self.TEST_FILES),
    }

  def _generate_examples(self, archive: str, names: tuple[str, ...]):
    return _cifar_records(archive, self.PREFIX, names, self.LABEL_BYTES,
                          self.LABEL_OFFSET)


class DartsCifar10(_CifarBase):
  """CIFAR-10 from `cifar-10-binary.tar.gz`."""

  NUM_CLASSES = 10
  ARCHIVE = ArchiveSpec(
      files=('cifar-10-binary.tar.gz',),
      urls=('https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz',))
  PREFIX = 'cifar-10-batches-bin/'
  MANUAL_DOWNLOAD_INSTRUCTIONS = ARCHIVE.instructions()
  TRAIN_FILES = tuple(f'data_batch_{i}.bin' for i in range(1, 6))
  TEST_FILES = ('test_batch.bin',)
  LABEL_BYTES = 1
  LABEL_OFFSET = 0


class DartsCifar100(_CifarBase):
  """CIFAR-100 (fine labels) from `cifar-100-binary.tar.gz`."""

  NUM_CLASSES = 100
  ARCHIVE = ArchiveSpec(
      files=('cifar-100-binary.tar.gz',),
      urls=('https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz',))
  MANUAL_DOWNLOAD_INSTRUCTIONS = ARCHIVE.instructions()
  PREFIX = 'cifar-100-binary/'
  TRAIN_FILES = ('train.bin',)
  TEST_FILES = ('test.bin',)
  LABEL_BYTES = 2  # coarse, fine
  LABEL_OFFSET = 1


def _read_idx(path: str, magic: int) -> np.ndarray:
  """Reads a gzipped idx file (the MNIST format)."""
  with gzip.open(path, 'rb') as f:
    data = f.read()
  header = np.frombuffer(data[:4], '>i4')[0]
  if header != magic:
    raise ValueError(f'{path} is not an idx file with magic {magic}')
  ndim = magic & 0xFF
  dims = np.frombuffer(data[4:4 + 4 * ndim], '>i4').astype(np.int64)
  return np.frombuffer(data[4 + 4 * ndim:], np.uint8).reshape(dims)


class _MnistBase(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Shared (Fashion-)MNIST logic from the four idx `.gz` files."""

  VERSION = tfds.core.Version('1.1.0')
  RELEASE_NOTES = {'1.0.0': 'Generated from the official idx files.',
                   '1.1.0': 'Records in the official order (no shuffling), so a search can '
                            'split them as the DARTS code does.'}
  ARCHIVE: ArchiveSpec
  HOMEPAGE: str

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description='28x28 grayscale images as uint8 HWC.',
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Tensor(
                shape=(28, 28, 1), dtype=np.uint8,
                encoding=tfds.features.Encoding.BYTES),
            'label': tfds.features.Tensor(shape=(), dtype=np.int64),
        }),
        supervised_keys=('image', 'label'),
        disable_shuffling=True,
        homepage=self.HOMEPAGE,
    )

  def _split_generators(self, dl_manager: Any) -> dict[str, Any]:
    tr_x, tr_y, te_x, te_y = _fetch(dl_manager, self.ARCHIVE)
    return {
        'train': self._generate_examples(tr_x, tr_y),
        'test': self._generate_examples(te_x, te_y),
    }

  def _generate_examples(self, images_path: str, labels_path: str):
    images = _read_idx(images_path, 2051)
    labels = _read_idx(labels_path, 2049).astype(np.int64)
    if len(images) != len(labels):
      raise ValueError(f'{images_path} and {labels_path} differ in length')
    for i in range(len(images)):
      yield i, {'image': images[i][..., None], 'label': labels[i]}


def _idx_spec(base_url: str) -> ArchiveSpec:
  files = ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz',
           't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz')
  return ArchiveSpec(files=files, urls=tuple(base_url + f for f in files))


class DartsMnist(_MnistBase):
  """MNIST from the idx files."""

  ARCHIVE = _idx_spec('https://storage.googleapis.com/cvdf-datasets/mnist/')
  MANUAL_DOWNLOAD_INSTRUCTIONS = ARCHIVE.instructions()
  HOMEPAGE = 'http://yann.lecun.com/exdb/mnist/'


class DartsFashionMnist(_MnistBase):
  """Fashion-MNIST from the idx files."""

  ARCHIVE = _idx_spec(
      'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/')
  MANUAL_DOWNLOAD_INSTRUCTIONS = ARCHIVE.instructions()
  HOMEPAGE = 'https://github.com/zalandoresearch/fashion-mnist'


# Project builders by the dataset name used in `darts_jax.data`.
BUILDERS: dict[str, type[tfds.core.GeneratorBasedBuilder]] = {
    'cifar10': DartsCifar10,
    'cifar100': DartsCifar100,
    'mnist': DartsMnist,
    'fashion_mnist': DartsFashionMnist,
}

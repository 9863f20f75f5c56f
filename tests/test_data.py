"""Tests for darts_jax.data: datasets, imagenet, splits, loader, tfds_builders and
augmentation (no network)."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from darts_jax import data
from darts_jax.data import augmentation
from darts_jax.data import datasets
from darts_jax.data import imagenet
from darts_jax.data import loader as loader_lib
from darts_jax.data import splits
from darts_jax.data import tfds_builders
from darts_jax.errors import UserError


def _add_file(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
  member = tarfile.TarInfo(name)
  member.size = len(payload)
  tar.addfile(member, io.BytesIO(payload))


def _write_cifar_archive(data_dir: str, cifar100: bool,
                         seed: int = 0) -> dict[str, np.ndarray]:
  """A tiny archive in the official binary format; returns the raw records."""
  rng = np.random.default_rng(seed)
  manual = os.path.join(data_dir, 'downloads', 'manual')
  os.makedirs(manual, exist_ok=True)
  if cifar100:
    archive, prefix, label_bytes = ('cifar-100-binary.tar.gz',
                                    'cifar-100-binary/', 2)
    files = {'train': [('train.bin', 30)], 'test': [('test.bin', 10)]}
  else:
    archive, prefix, label_bytes = ('cifar-10-binary.tar.gz',
                                    'cifar-10-batches-bin/', 1)
    files = {'train': [(f'data_batch_{i}.bin', 20) for i in range(1, 6)],
             'test': [('test_batch.bin', 10)]}
  records = {'train': [], 'test': []}
  with tarfile.open(os.path.join(manual, archive), 'w:gz') as tar:
    _add_file(tar, prefix + 'readme.html', b'not data')
    for split, parts in files.items():
      for name, count in parts:
        rec = rng.integers(0, 256, (count, label_bytes + 3072), dtype=np.uint8)
        rec[:, 0] %= 20  # coarse label (CIFAR-100) or label (CIFAR-10).
        rec[:, label_bytes - 1] %= 100 if cifar100 else 10
        _add_file(tar, prefix + name, rec.tobytes())
        records[split].append(rec)
  return {k: np.concatenate(v) for k, v in records.items()}


@pytest.mark.parametrize('cifar100', [False, True])
def test_cifar_from_manual_archive(tmp_path, cifar100):
  name = 'cifar100' if cifar100 else 'cifar10'
  label_bytes = 2 if cifar100 else 1
  records = _write_cifar_archive(str(tmp_path), cifar100)
  for split in ('train', 'test'):
    source = data.load_source(name, split, data_dir=str(tmp_path),
                              download=False)
    assert isinstance(source, data.Source)
    raw = records[split]
    assert len(source) == len(raw)
    images, labels = source.get(np.arange(len(source)))
    assert images.shape == (len(raw), 32, 32, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int32
    # Channel-major (R, G, B planes) bytes -> HWC, in the official files' order
    # (the project's builders do not let tfds shuffle: the DARTS split needs it).
    np.testing.assert_array_equal(images.transpose(0, 3, 1, 2).reshape(len(raw), -1),
                                  raw[:, label_bytes:])
    np.testing.assert_array_equal(labels, raw[:, label_bytes - 1])
    np.testing.assert_array_equal(source.official_positions(), np.arange(len(raw)))
  # Second load reads the prepared data (archive no longer needed).
  os.remove(os.path.join(tmp_path, 'downloads', 'manual',
                         tfds_builders.BUILDERS[name].ARCHIVE.files[0]))
  again = data.load_source(name, 'test', data_dir=str(tmp_path),
                           download=False)
  np.testing.assert_array_equal(again.get(np.arange(3))[0],
                                source.get(np.arange(3))[0])


def test_missing_data_is_one_line_user_error(tmp_path, monkeypatch):
  monkeypatch.setattr(tfds_builders, 'url_reachable', lambda *a, **k: False)
  with pytest.raises(UserError) as err:
    data.load_source('cifar10', 'train', data_dir=str(tmp_path))
  msg = str(err.value)
  assert '\n' not in msg
  assert msg == (
      f'cifar10 is not prepared under {tmp_path} and cannot be downloaded '
      'here: copy cifar-10-binary.tar.gz '
      '(https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz) into '
      f'{tmp_path}/downloads/manual/ and rerun')
  for name in ('mnist', 'imagenet2012'):
    with pytest.raises(UserError) as err:
      data.load_source(name, 'test', data_dir=str(tmp_path), download=False)
    assert '\n' not in str(err.value) and name in str(err.value)
  assert not os.path.exists(tmp_path / 'cifar10')


def test_corrupt_archive_is_user_error(tmp_path):
  manual = tmp_path / 'downloads' / 'manual'
  manual.mkdir(parents=True)
  (manual / 'cifar-10-binary.tar.gz').write_bytes(b'not a tarball')
  with pytest.raises(UserError, match='could not prepare cifar10'):
    data.load_source('cifar10', 'train', data_dir=str(tmp_path),
                     download=False)


def test_unknown_names():
  with pytest.raises(UserError, match='digits, cifar10'):
    data.get_info('cifar11')
  with pytest.raises(UserError, match='unknown dataset'):
    data.load_source('svhn', 'train')
  with pytest.raises(UserError, match='unknown split'):
    data.load_source('digits', 'validation')


def test_infos():
  for name in data.DATASETS:
    info = data.get_info(name)
    assert info.name == name
    assert len(info.mean) == len(info.std) == info.image_shape[-1]


def _write_idx(path, array: np.ndarray, magic: int) -> None:
  header = np.asarray([magic, *array.shape], '>i4').tobytes()
  with gzip.open(path, 'wb') as f:
    f.write(header + array.astype(np.uint8).tobytes())


def test_mnist_from_manual_idx_files(tmp_path):
  manual = tmp_path / 'downloads' / 'manual'
  manual.mkdir(parents=True)
  rng = np.random.default_rng(1)
  arrays = {}
  for prefix, n in (('train', 12), ('t10k', 5)):
    x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, (n,), dtype=np.uint8)
    _write_idx(manual / f'{prefix}-images-idx3-ubyte.gz', x, 2051)
    _write_idx(manual / f'{prefix}-labels-idx1-ubyte.gz', y, 2049)
    arrays['train' if prefix == 'train' else 'test'] = (x, y)
  for split, (x, y) in arrays.items():
    source = data.load_source('fashion_mnist', split, data_dir=str(tmp_path),
                              download=False)
    images, labels = source.get(np.arange(len(source)))
    assert images.shape == (len(x), 28, 28, 1)
    np.testing.assert_array_equal(images[..., 0], x)  # In the files' order.
    np.testing.assert_array_equal(labels, y)


def test_mnist_mock_data(tmp_path):
  with tfds.testing.mock_data(num_examples=6, data_dir=str(tmp_path)):
    source = data.load_source('mnist', 'train', data_dir=str(tmp_path))
    assert len(source) == 6
    images, labels = source.get(np.array([0, 5, 2]))
    # tfds's own MNIST records are shuffled and carry no id: no DARTS-code split of them.
    with pytest.raises(UserError, match='search_split="random"'):
      data.search_indices(source, 'ordered', 0.5, seed=0)
  assert images.shape == (3, 28, 28, 1) and images.dtype == np.uint8
  assert labels.shape == (3,) and labels.dtype == np.int32
  assert ((labels >= 0) & (labels < 10)).all()


def test_imagenet_mock_data(tmp_path):
  with tfds.testing.mock_data(num_examples=4, data_dir=str(tmp_path)):
    train = data.load_source('imagenet2012', 'train', data_dir=str(tmp_path))
    test = data.load_source('imagenet2012', 'test', data_dir=str(tmp_path))
    a, la = train.get(np.arange(4))
    b, _ = train.get(np.arange(4))
    c, _ = loader_lib.for_epoch(train, 1).get(np.arange(4))
    t, lt = test.get(np.array([1, 3]))
  assert a.shape == (4, 224, 224, 3) and a.dtype == np.uint8
  assert la.dtype == np.int32 and lt.shape == (2,)
  np.testing.assert_array_equal(a, b)  # Same (seed, epoch, index).
  assert not np.array_equal(a, c)  # New crops next epoch.
  assert t.shape == (2, 224, 224, 3)


def test_epoch_loader_draws_each_epochs_imagenet_crops(tmp_path):
  with tfds.testing.mock_data(num_examples=4, data_dir=str(tmp_path)):
    train = data.load_source('imagenet2012', 'train', data_dir=str(tmp_path), seed=5)
    loaders = [data.epoch_loader(train, np.arange(4), 4, seed=0, epoch=e, num_steps=1)
               for e in (0, 1)]
    (first,), (second,) = (list(loader) for loader in loaders)
    again = train.with_epoch(1).get(loaders[1].index_batches[0])[0]
  assert [loader.source.epoch for loader in loaders] == [0, 1]
  assert train.seed == 5
  assert sorted(first['label']) == sorted(second['label'])  # The same 4 images ...
  assert not np.array_equal(np.sort(first['image'].reshape(4, -1), 0),
                            np.sort(second['image'].reshape(4, -1), 0))  # ... new crops.
  np.testing.assert_array_equal(second['image'], again)


def test_imagenet_preprocessing_shapes():
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (300, 500, 3), dtype=np.uint8)
  out = imagenet.random_resized_crop_flip(image, np.random.default_rng(3))
  assert out.shape == (224, 224, 3) and out.dtype == np.uint8
  small = rng.integers(0, 256, (50, 40, 3), dtype=np.uint8)
  assert imagenet.resize_center_crop(small).shape == (224, 224, 3)


def test_digits():
  train = data.load_source('digits', 'train')
  test = data.load_source('digits', 'test')
  assert (len(train), len(test)) == (1437, 360)
  images, labels = train.get(np.arange(len(train)))
  assert images.shape == (1437, 8, 8, 1) and images.dtype == np.uint8
  assert images.max() == 255 and labels.dtype == np.int32
  assert set(labels.tolist()) == set(range(10))
  test_images, _ = test.get(np.arange(360))
  train_set = {x.tobytes() for x in images}
  # Disjoint (up to the few duplicate images in the dataset).
  assert sum(x.tobytes() in train_set for x in test_images) < 10
  again, _ = data.load_source('digits', 'train').get(np.arange(5))
  np.testing.assert_array_equal(again, images[:5])


def test_search_split_random():
  a, b = data.search_split_random(101, 0.5, seed=3)
  assert len(a) == 50 and len(b) == 51
  assert not set(a.tolist()) & set(b.tolist())
  np.testing.assert_array_equal(np.sort(np.concatenate([a, b])),
                                np.arange(101))
  assert (np.diff(a) > 0).all() and (np.diff(b) > 0).all()
  a2, _ = data.search_split_random(101, 0.5, seed=3)
  np.testing.assert_array_equal(a, a2)
  a3, _ = data.search_split_random(101, 0.5, seed=4)
  assert not np.array_equal(a, a3)
  with pytest.raises(UserError):
    data.search_split_random(10, 1.0)


def test_ordered_split_is_the_darts_codes():
  """The DARTS code: search-train = the first floor(portion * n) of the official order."""
  positions = np.random.default_rng(0).permutation(11)  # Record i is example positions[i].
  train, val = splits.ordered_split(positions, 0.5)
  assert sorted(positions[train].tolist()) == [0, 1, 2, 3, 4]
  assert sorted(positions[val].tolist()) == [5, 6, 7, 8, 9, 10]
  assert (np.diff(train) > 0).all() and (np.diff(val) > 0).all()
  with pytest.raises(UserError, match='not a permutation'):
    splits.ordered_split(np.array([0, 0, 1]), 0.5)
  with pytest.raises(UserError, match='train_portion must be in'):
    splits.ordered_split(positions, 1.0)


def _write_json(path, obj):
  with open(path, 'w', encoding='utf-8') as f:
    json.dump(obj, f)
  return str(path)


def test_file_split_reads_autodls_split_files(tmp_path):
  positions = np.array([3, 0, 4, 1, 5, 2])  # Record i is example positions[i].
  # AutoDL-Projects' typed form (configs/nas-benchmark/cifar-split.txt) and a plain one.
  typed = _write_json(tmp_path / 'typed.txt', {'train': ['int', ['0', '4', '5']],
                                                'valid': ['int', ['1', '2']]})
  plain = _write_json(tmp_path / 'plain.json', {'train': [0, 4, 5], 'valid': [1, 2]})
  for path in (typed, plain):
    train, val = splits.file_split(positions, path)
    np.testing.assert_array_equal(train, [1, 2, 4])  # Records holding examples 0, 4, 5.
    np.testing.assert_array_equal(val, [3, 5])
  bad = {'overlap.json': ({'train': [0, 1], 'valid': [1, 2]}, 'overlap'),
         'range.json': ({'train': [0, 9], 'valid': [1]}, 'outside 0..5'),
         'empty.json': ({'train': [], 'valid': [1]}, 'empty'),
         'twice.json': ({'train': [0, 0], 'valid': [1]}, 'twice'),
         'keys.json': ({'train': [0]}, 'must be JSON with'),
         'words.json': ({'train': ['a'], 'valid': [1]}, 'must be JSON with')}
  for name, (content, message) in bad.items():
    with pytest.raises(UserError, match=message):
      splits.file_split(positions, _write_json(tmp_path / name, content))
  (tmp_path / 'text.txt').write_text('train: 0 1 2')
  with pytest.raises(UserError, match='cannot read the split file'):
    splits.file_split(positions, str(tmp_path / 'text.txt'))


class _RecordsWithIds:
  """A tfds-like data source whose records carry tfds's CIFAR 'id' feature."""

  def __init__(self, ids):
    self.records = [{'image': np.full((2, 2, 1), i, np.uint8), 'label': 0, 'id': record_id}
                    for i, record_id in enumerate(ids)]

  def __len__(self):
    return len(self.records)

  def __getitems__(self, keys):
    return [self.records[k] for k in keys]


def test_search_indices_by_config(tmp_path):
  digits = data.load_source('digits', 'train')
  train, val = data.search_indices(digits, 'ordered', 0.5, seed=0)
  np.testing.assert_array_equal(train, np.arange(718))
  np.testing.assert_array_equal(val, np.arange(718, 1437))
  for got, want in zip(data.search_indices(digits, 'random', 0.5, seed=3),
                       data.search_split_random(1437, 0.5, seed=3)):
    np.testing.assert_array_equal(got, want)
  # tfds's own CIFAR records are shuffled; their ids give the official positions.
  shuffled = datasets.TfdsSource(_RecordsWithIds([b'train_00002', b'train_00000', 'train_00003',
                                              b'train_00001']))
  np.testing.assert_array_equal(shuffled.official_positions(), [2, 0, 3, 1])
  train, val = data.search_indices(shuffled, 'ordered', 0.5, seed=0)
  np.testing.assert_array_equal(train, [1, 3])
  split_file = _write_json(tmp_path / 'split.json', {'train': [3], 'valid': [0, 1]})
  train, val = data.search_indices(shuffled, split_file, 0.5, seed=0)
  np.testing.assert_array_equal(train, [2])
  np.testing.assert_array_equal(val, [1, 3])
  anonymous = datasets.TfdsSource(_RecordsWithIds(['a', 'b']))
  with pytest.raises(UserError, match='search_split="random"'):
    data.search_indices(anonymous, 'ordered', 0.5, seed=0)
  with pytest.raises(UserError, match='set config.dataset.search_split="random" with it'):
    data.search_indices(digits, 'ordered', 0.5, seed=0, subset=0.5)
  with pytest.raises(UserError, match='neither "ordered", "random" nor a file'):
    data.search_indices(digits, 'first_half', 0.5, seed=0)


def test_epoch_batches():
  indices = np.arange(10, 110)
  b0 = data.epoch_batches(indices, 16, seed=1, epoch=0)
  assert b0.shape == (6, 16)
  np.testing.assert_array_equal(b0, data.epoch_batches(indices, 16, 1, 0))
  assert not np.array_equal(b0, data.epoch_batches(indices, 16, 1, 1))
  assert not np.array_equal(b0, data.epoch_batches(indices, 16, 2, 0))
  flat = b0.reshape(-1)
  assert len(set(flat.tolist())) == 96 and set(flat.tolist()) <= set(
      indices.tolist())
  parts = [data.epoch_batches(indices, 16, 1, 0, process_index=p,
                              process_count=4) for p in range(4)]
  for p in parts:
    assert p.shape == (6, 4)
  np.testing.assert_array_equal(np.concatenate(parts, axis=1), b0)
  with pytest.raises(UserError):
    data.epoch_batches(indices, 10, 0, 0, process_count=4)
  with pytest.raises(UserError):
    data.epoch_batches(indices, 128, 0, 0)


def test_search_split_samples_a_subset_first():
  """PC-DARTS on ImageNet: 10% and 2.5% of the train set (subset 0.125, portion 0.8)."""
  a, b = data.search_split_random(1000, 0.8, seed=3, subset=0.125)
  assert len(a) == 100 and len(b) == 25
  assert not set(a.tolist()) & set(b.tolist())
  assert set(a.tolist()) | set(b.tolist()) <= set(range(1000))
  # Subset 1 is the plain split, bit for bit (existing runs and checkpoints).
  for got, want in zip(data.search_split_random(101, 0.5, 3, subset=1.0),
                       data.search_split_random(101, 0.5, 3)):
    np.testing.assert_array_equal(got, want)
  with pytest.raises(UserError, match='search_subset must be in'):
    data.search_split_random(100, 0.5, subset=0.0)


def test_epoch_batches_cycle_a_smaller_split():
  """The search-val split smaller than search-train is cycled: new permutations follow."""
  indices = np.arange(10, 30)  # 2 batches of 8 per permutation.
  first = data.epoch_batches(indices, 8, seed=1, epoch=0)
  cycled = data.epoch_batches(indices, 8, seed=1, epoch=0, num_steps=5)
  assert cycled.shape == (5, 8)
  np.testing.assert_array_equal(cycled[:2], first)
  for part in (cycled[2:4].reshape(-1), cycled[4:].reshape(-1)):  # Rounds 1 and 2.
    assert len(set(part.tolist())) == len(part) and set(part.tolist()) <= set(indices.tolist())
  assert not np.array_equal(cycled[2:4], first)
  np.testing.assert_array_equal(data.epoch_batches(indices, 8, 1, 0, num_steps=1), first[:1])
  parts = [data.epoch_batches(indices, 8, 1, 0, process_index=p, process_count=2,
                              num_steps=5) for p in range(2)]
  np.testing.assert_array_equal(np.concatenate(parts, axis=1), cycled)


def test_batch_loader():
  rng = np.random.default_rng(0)
  source = datasets.ArraySource(
      rng.integers(0, 256, (50, 4, 4, 3), dtype=np.uint8),
      np.arange(50, dtype=np.int32))
  batches = data.epoch_batches(np.arange(50), 8, seed=0, epoch=0)
  loader = loader_lib.BatchLoader(source, batches)
  out = list(loader)
  assert len(out) == len(batches) == 6
  for step, item in enumerate(out):
    images, labels = source.get(batches[step])
    np.testing.assert_array_equal(item['image'], images)
    np.testing.assert_array_equal(item['label'], labels)
  assert loader.wait_seconds >= 0.0
  resumed = list(loader_lib.BatchLoader(source, batches, start_step=4))
  assert len(resumed) == 2
  np.testing.assert_array_equal(resumed[0]['label'], out[4]['label'])
  # Stopping early does not hang.
  for _ in loader_lib.BatchLoader(source, batches, prefetch=2):
    break


def test_batch_loader_propagates_errors():

  class Broken:

    def __len__(self):
      return 10

    def get(self, indices):
      raise RuntimeError('boom')

  with pytest.raises(RuntimeError, match='boom'):
    list(loader_lib.BatchLoader(Broken(), np.zeros((3, 2), np.int64)))


def test_normalize():
  images = jnp.full((2, 3, 3, 3), 255, jnp.uint8)
  out = augmentation.normalize(images, (0.5, 0.5, 0.5), (0.25, 0.5, 1.0),
                               dtype=jnp.bfloat16)
  assert out.dtype == jnp.bfloat16 and out.shape == images.shape
  np.testing.assert_allclose(np.asarray(out[0, 0, 0], np.float32),
                             [2.0, 1.0, 0.5])


def test_random_crop_flip():
  key = jax.random.key(0)
  # Distinct nonzero pixel values so every crop pixel can be traced back.
  images = (jnp.arange(8 * 6 * 6 * 2) % 250 + 1).astype(jnp.uint8).reshape(
      8, 6, 6, 2)
  fn = jax.jit(augmentation.random_crop_flip, static_argnames='padding')
  out = fn(key, images, padding=2)
  assert out.shape == images.shape and out.dtype == images.dtype
  np.testing.assert_array_equal(out, fn(key, images, padding=2))
  assert not np.array_equal(out, fn(jax.random.key(1), images, padding=2))
  out, images = np.asarray(out), np.asarray(images)
  for i in range(len(images)):
    allowed = set(images[i].reshape(-1).tolist()) | {0}
    assert set(out[i].reshape(-1).tolist()) <= allowed
  changed = [not np.array_equal(out[i], images[i]) for i in range(8)]
  assert any(changed)


def test_cutout():
  images = jnp.ones((16, 8, 8, 1), jnp.float32)
  fn = jax.jit(augmentation.cutout, static_argnames='length')
  out = fn(jax.random.key(0), images, length=4)
  assert out.shape == images.shape and out.dtype == images.dtype
  np.testing.assert_array_equal(out, fn(jax.random.key(0), images, length=4))
  out = np.asarray(out)[..., 0]
  for i in range(len(out)):
    rows = np.nonzero((out[i] == 0).any(axis=1))[0]
    cols = np.nonzero((out[i] == 0).any(axis=0))[0]
    assert 1 <= len(rows) <= 4 and 1 <= len(cols) <= 4
    # The zeros form one full rectangle (a clipped square).
    block = out[i][rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    assert (block == 0).all() and (out[i] == 0).sum() == block.size
  assert (np.asarray(out) == 0).sum(axis=(1, 2)).max() == 16
  uint8 = fn(jax.random.key(0), jnp.full((2, 8, 8, 3), 7, jnp.uint8), length=4)
  assert uint8.dtype == jnp.uint8


def test_color_jitter_like_torchvisions():
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
  assert np.array_equal(imagenet.color_jitter(image, rng, 0, 0, 0, 0), image)  # Identity.
  out = imagenet.color_jitter(image, np.random.default_rng(1), 0.4, 0.4, 0.4, 0.2)
  assert out.shape == image.shape and out.dtype == np.uint8 and not np.array_equal(out, image)
  np.testing.assert_array_equal(
      out, imagenet.color_jitter(image, np.random.default_rng(1), 0.4, 0.4, 0.4, 0.2))
  # Brightness alone scales every pixel by one factor in [0.6, 1.4].
  gray = np.full((4, 4, 3), 100, np.uint8)
  factors = {int(imagenet.color_jitter(gray, np.random.default_rng(s), 0.4, 0, 0, 0)[0, 0, 0])
             for s in range(50)}
  assert min(factors) >= 60 and max(factors) <= 140 and len(factors) > 20
  # Hue alone keeps a gray image gray (no saturation to rotate).
  np.testing.assert_array_equal(
      imagenet.color_jitter(gray, np.random.default_rng(2), 0, 0, 0, 0.5), gray)

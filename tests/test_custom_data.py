"""Searching on your own data (darts_jax.data.sources, custom, tfds_any, custom_base): any
tfds image-classification data set by name, an image folder, an .npz; the stats cache; the
one-line errors. No network, no TensorFlow."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from darts_jax import data
from darts_jax.data import custom_base
from darts_jax.data import datasets
from darts_jax.errors import UserError


def _png(image: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format='PNG')
  return buffer.getvalue()


def _image(label: int, shape, seed: int) -> np.ndarray:
  """Pixels that say their label: the first pixel is 40 * label + 10."""
  image = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
  image.reshape(-1)[0] = 40 * label + 10
  return image


def _label_of(image: np.ndarray) -> int:
  return (int(image.reshape(-1)[0]) - 10) // 40


def _user_error(fn, *args, **kwargs) -> str:
  with pytest.raises(UserError) as excinfo:
    fn(*args, **kwargs)
  message = str(excinfo.value)
  assert '\n' not in message, message
  return message


# ----------------------------------------------------------------------------
# tfds data sets of the tests' own (prepared as array_record without TensorFlow: images
# go in as PNG bytes). Not registered: tfds.builder reads them from their files, as it
# reads a data set prepared elsewhere.


class _TestBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  VERSION = tfds.core.Version('1.0.0')
  FEATURES: dict
  SPLITS: dict = {'train': 12, 'test': 6}

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
        self.FEATURES), supervised_keys=None)

  def _split_generators(self, dl_manager):
    del dl_manager
    return {split: self._generate_examples(split, n) for split, n in self.SPLITS.items()}

  def _example(self, i: int, seed: int) -> dict:
    raise NotImplementedError

  def _generate_examples(self, split, n):
    for i in range(n):
      yield f'{split}_{i}', self._example(i, 1000 * list(self.SPLITS).index(split) + i)


class DartsTestShapes(_TestBuilder, skip_registration=True):
  """Colour images of mixed sizes, 3 named classes, train and test splits."""
  FEATURES = {'picture': tfds.features.Image(shape=(None, None, 3)),
              'kind': tfds.features.ClassLabel(names=['circle', 'square', 'star']),
              'id': tfds.features.Text()}

  def _example(self, i, seed):
    size = 8 + i % 3
    return {'picture': _png(_image(i % 3, (size, size + 1, 3), seed)), 'kind': i % 3,
            'id': str(i)}


class DartsTestGrey(_TestBuilder, skip_registration=True):
  """Grey 9x7 images, 4 classes, a train split only."""
  FEATURES = {'image': tfds.features.Image(shape=(9, 7, 1)),
              'label': tfds.features.ClassLabel(num_classes=4)}
  SPLITS = {'train': 40}

  def _example(self, i, seed):
    return {'image': _png(_image(i % 4, (9, 7), seed)), 'label': i % 4}


class DartsTestNoLabel(_TestBuilder, skip_registration=True):
  FEATURES = {'image': tfds.features.Tensor(shape=(4, 4), dtype=np.uint8),
              'label': tfds.features.Tensor(shape=(), dtype=np.int64)}

  def _example(self, i, seed):
    return {'image': _image(0, (4, 4), seed), 'label': i % 2}


class DartsTestNoImage(_TestBuilder, skip_registration=True):
  FEATURES = {'x': tfds.features.Tensor(shape=(4,), dtype=np.float32),
              'label': tfds.features.ClassLabel(num_classes=2)}

  def _example(self, i, seed):
    return {'x': np.zeros(4, np.float32), 'label': i % 2}


class DartsTestOneClass(_TestBuilder, skip_registration=True):
  FEATURES = {'image': tfds.features.Tensor(shape=(4, 4, 3), dtype=np.uint8),
              'label': tfds.features.ClassLabel(names=['only'])}

  def _example(self, i, seed):
    return {'image': _image(0, (4, 4, 3), seed), 'label': 0}


@pytest.fixture(scope='module')
def tfds_dir(tmp_path_factory) -> str:
  data_dir = str(tmp_path_factory.mktemp('tfds'))
  config = tfds.download.DownloadConfig(try_download_gcs=False)
  for cls in (DartsTestShapes, DartsTestGrey, DartsTestNoLabel, DartsTestNoImage,
              DartsTestOneClass):
    cls(data_dir=data_dir, file_format='array_record').download_and_prepare(
        download_config=config)
  return data_dir


def test_tfds_by_name_mixed_sizes_need_image_size(tfds_dir):
  message = _user_error(data.dataset_info, {'name': 'darts_test_shapes', 'data_dir': tfds_dir})
  assert 'config.dataset.image_size' in message and 'mixed sizes' in message


def test_tfds_by_name_resized_info_splits_and_labels(tfds_dir):
  config = {'name': 'darts_test_shapes', 'data_dir': tfds_dir, 'image_size': 8}
  assert data.dataset_kind(config['name']) == 'tfds'
  info = data.dataset_info(config)
  assert (info.num_classes, info.image_shape, info.class_names) == (
      3, (8, 8, 3), ('circle', 'square', 'star'))
  assert (info.num_train, info.num_test) == (12, 6)
  train, test = data.load_split(config, 'train'), data.load_split(config, 'test')
  assert (len(train), len(test)) == (12, 6)
  images, labels = train.get(np.arange(12))
  assert images.shape == (12, 8, 8, 3) and images.dtype == np.uint8
  assert labels.dtype == np.int32 and np.bincount(labels).tolist() == [4, 4, 4]
  np.testing.assert_array_equal(train.official_positions(), np.arange(12))
  # The mean and std are those of the train images as fed (resized).
  x = images.reshape(-1, 3) / 255.0
  np.testing.assert_allclose(info.mean, x.mean(0), atol=1e-9)
  np.testing.assert_allclose(info.std, x.std(0), atol=1e-9)


def test_tfds_stats_cache_written_once_and_reused(tfds_dir, monkeypatch):
  config = {'name': 'darts_test_shapes', 'data_dir': tfds_dir, 'image_size': 10}
  path = os.path.join(tfds_dir, 'darts_test_shapes', '1.0.0', custom_base.STATS_FILE)
  first = data.dataset_info(config)
  with open(path, encoding='utf-8') as f:
    cached = json.load(f)
  (entry,) = [v for k, v in cached.items() if '10x10x3' in k]
  assert entry['mean'] == list(first.mean) and entry['fingerprint'] == {'num_examples': 12}
  def no_compute(*args, **kwargs):
    raise AssertionError('the statistics were computed again')
  monkeypatch.setattr(custom_base, 'channel_stats', no_compute)
  assert data.dataset_info(config) == first
  # Another image size is another entry, beside the first.
  monkeypatch.undo()
  data.dataset_info(dict(config, image_size=9))
  with open(path, encoding='utf-8') as f:
    assert len(json.load(f)) == len(cached) + 1
  assert not [f for f in os.listdir(os.path.dirname(path)) if f.endswith('.tmp')]


def test_tfds_without_test_split_holds_out_a_stratified_part(tfds_dir, capsys):
  config = {'name': 'darts_test_grey', 'data_dir': tfds_dir, 'test_fraction': 0.2}
  info = data.dataset_info(config)
  assert info.image_shape == (9, 7, 1) and info.class_names == ('0', '1', '2', '3')
  assert (info.num_train, info.num_test) == (32, 8)
  assert 'config.dataset.test_fraction=0.2' in capsys.readouterr().err
  train, test = data.load_split(config, 'train'), data.load_split(config, 'test')
  train_idx, test_idx = train.indices, test.indices
  assert not np.intersect1d(train_idx, test_idx).size
  np.testing.assert_array_equal(np.union1d(train_idx, test_idx), np.arange(40))
  test_images, test_labels = test.get(np.arange(len(test)))
  assert np.bincount(test_labels).tolist() == [2, 2, 2, 2]  # 0.2 of each class's 10.
  assert [_label_of(x) for x in test_images] == test_labels.tolist()
  # Deterministic, and the search reads only the train part.
  np.testing.assert_array_equal(data.load_split(config, 'train').indices, train_idx)
  search_train, search_val = data.search_indices(train, 'ordered', 0.5, seed=0)
  assert len(search_train) + len(search_val) == 32
  message = _user_error(data.dataset_info, dict(config, test_fraction=0.0))
  assert 'no test split' in message and 'config.dataset.test_fraction' in message


def test_tfds_bad_data_sets_are_one_line_errors(tfds_dir):
  assert 'no label feature' in _user_error(
      data.dataset_info, {'name': 'darts_test_no_label', 'data_dir': tfds_dir})
  assert 'no image feature' in _user_error(
      data.dataset_info, {'name': 'darts_test_no_image', 'data_dir': tfds_dir})
  assert 'one class only' in _user_error(
      data.dataset_info, {'name': 'darts_test_one_class', 'data_dir': tfds_dir})
  assert 'unknown dataset' in _user_error(
      data.dataset_info, {'name': 'no_such_data_set_anywhere', 'data_dir': tfds_dir})


def test_registered_tfds_data_set_not_prepared_is_one_line_error(tmp_path):
  message = _user_error(data.load_split, {'name': 'svhn_cropped', 'data_dir': str(tmp_path)},
                        'train')
  assert 'is not prepared' in message and 'array_record' in message


def test_registered_tfds_data_sets_through_mock_data(tmp_path):
  with tfds.testing.mock_data(num_examples=10, data_dir=str(tmp_path)):
    config = {'name': 'svhn_cropped', 'data_dir': str(tmp_path)}
    info = data.dataset_info(config)
    assert (info.num_classes, info.image_shape, info.num_train) == (10, (32, 32, 3), 10)
    images, labels = data.load_split(config, 'test').get(np.arange(4))
    assert images.shape == (4, 32, 32, 3) and labels.shape == (4,)
    # Images of any size (cats_vs_dogs), resized.
    config = {'name': 'cats_vs_dogs', 'data_dir': str(tmp_path), 'image_size': 12}
    info = data.dataset_info(config)
    assert (info.num_classes, info.image_shape) == (2, (12, 12, 3))
    images, _ = data.load_split(config, 'train').get(np.arange(3))
    assert images.shape == (3, 12, 12, 3)
  # Nothing was cached beside the mock data set (it has no directory).
  assert not os.path.exists(os.path.join(str(tmp_path), 'svhn_cropped'))


# ----------------------------------------------------------------------------
# Image folders.


def _write_folder(root, classes: dict, shape=(6, 5), mode_of=lambda c, i: 'L') -> None:
  for label, (name, count) in enumerate(classes.items()):
    os.makedirs(os.path.join(root, name), exist_ok=True)
    for i in range(count):
      mode = mode_of(name, i)
      image = _image(label, shape + ((3,) if mode == 'RGB' else ()), 100 * label + i)
      Image.fromarray(image).save(os.path.join(root, name, f'img_{i:03d}.png'))


def test_folder_with_train_and_test_sub_folders(tmp_path):
  # Written out of order: the class names are sorted.
  _write_folder(tmp_path / 'train', {'zebra': 4, 'ant': 5, 'moth': 3})
  _write_folder(tmp_path / 'test', {'zebra': 2, 'ant': 1, 'moth': 2})
  (tmp_path / 'train' / 'ant' / 'notes.txt').write_text('not an image')
  config = {'name': f'folder:{tmp_path}'}
  info = data.dataset_info(config)
  assert info.class_names == ('ant', 'moth', 'zebra')
  assert (info.num_classes, info.image_shape, info.num_train, info.num_test) == (
      3, (6, 5, 1), 12, 5)
  train, test = data.load_split(config, 'train'), data.load_split(config, 'test')
  images, labels = train.get(np.arange(len(train)))
  assert images.shape == (12, 6, 5, 1)
  # write order: zebra 0, ant 1, moth 2; sorted: ant 0, moth 1, zebra 2.
  remap = {0: 2, 1: 0, 2: 1}
  assert [remap[_label_of(x)] for x in images] == labels.tolist()
  assert np.bincount(labels).tolist() == [5, 3, 4]
  _, test_labels = test.get(np.arange(len(test)))
  assert np.bincount(test_labels).tolist() == [1, 2, 2]
  # A plain directory path is a folder too; the stats are cached in the folder.
  assert data.dataset_kind(str(tmp_path)) == 'folder'
  assert data.dataset_info({'name': str(tmp_path)}).mean == info.mean
  assert os.path.isfile(tmp_path / custom_base.STATS_FILE)


def test_folder_without_splits_holds_out_each_class(tmp_path, capsys, monkeypatch):
  _write_folder(tmp_path, {'a': 10, 'b': 20, 'c': 5},
                mode_of=lambda c, i: 'RGB' if (c, i) == ('b', 3) else 'L')
  config = {'name': f'folder:{tmp_path}', 'test_fraction': 0.2}
  info = data.dataset_info(config)
  assert 'config.dataset.test_fraction=0.2' in capsys.readouterr().err
  assert info.image_shape == (6, 5, 3)  # One colour image: all are read as RGB.
  train, test = data.load_split(config, 'train'), data.load_split(config, 'test')
  assert (len(train), len(test)) == (28, 7)
  assert not set(train.paths) & set(test.paths)
  assert np.bincount(test.labels).tolist() == [2, 4, 1]
  assert data.load_split(config, 'test').paths == test.paths  # Deterministic.
  # The 'ordered' search split of a folder has every class in both parts.
  search_train, search_val = data.search_indices(train, 'ordered', 0.5, seed=0)
  for part in (search_train, search_val):
    assert set(train.labels[part]) == {0, 1, 2}
  # The stats are reused while the files stay the same.
  def no_compute(*args, **kwargs):
    raise AssertionError('the statistics were computed again')
  monkeypatch.setattr(custom_base, 'channel_stats', no_compute)
  assert data.dataset_info(config) == info


def test_folder_mixed_sizes_need_image_size(tmp_path):
  _write_folder(tmp_path, {'a': 3, 'b': 3})
  _write_folder(tmp_path, {'c': 3}, shape=(7, 7))
  message = _user_error(data.dataset_info, {'name': str(tmp_path)})
  assert 'mixed sizes' in message and 'config.dataset.image_size' in message
  config = {'name': str(tmp_path), 'image_size': 4}
  assert data.dataset_info(config).image_shape == (4, 4, 1)
  images, _ = data.load_split(config, 'train').get(np.arange(5))
  assert images.shape == (5, 4, 4, 1)


def test_folder_errors_are_one_line(tmp_path):
  _write_folder(tmp_path / 'one', {'a': 3})
  assert 'one class only (a)' in _user_error(data.dataset_info, {'name': str(tmp_path / 'one')})
  _write_folder(tmp_path / 'empty', {'a': 3})
  os.makedirs(tmp_path / 'empty' / 'b')
  message = _user_error(data.dataset_info, {'name': str(tmp_path / 'empty')})
  assert os.path.join(str(tmp_path / 'empty'), 'b') in message and 'no image' in message
  _write_folder(tmp_path / 'broken', {'a': 3, 'b': 3})
  broken = tmp_path / 'broken' / 'b' / 'img_001.png'
  broken.write_bytes(b'not a png')
  message = _user_error(data.dataset_info, {'name': str(tmp_path / 'broken')})
  assert str(broken) in message
  assert 'does not exist' in _user_error(data.dataset_info,
                                         {'name': f'folder:{tmp_path}/missing'})
  _write_folder(tmp_path / 'no_test' / 'train', {'a': 2, 'b': 2})
  os.makedirs(tmp_path / 'no_test' / 'test')
  assert 'no class sub-folders' in _user_error(data.dataset_info,
                                               {'name': str(tmp_path / 'no_test')})
  _write_folder(tmp_path / 'extra' / 'train', {'a': 2, 'b': 2})
  _write_folder(tmp_path / 'extra' / 'test', {'a': 1, 'c': 1})
  assert "'c'" in _user_error(data.dataset_info, {'name': str(tmp_path / 'extra')})
  os.makedirs(tmp_path / 'nothing')
  assert 'no class sub-folders' in _user_error(data.dataset_info,
                                               {'name': str(tmp_path / 'nothing')})


def test_folder_image_broken_after_the_scan_names_the_file(tmp_path):
  _write_folder(tmp_path, {'a': 4, 'b': 4})
  config = {'name': str(tmp_path), 'test_fraction': 0.25}
  source = data.load_split(config, 'test')
  with open(source.paths[0], 'r+b') as f:  # A truncated PNG: the header still reads.
    f.truncate(60)
  assert source.paths[0] in _user_error(source.get, np.arange(len(source)))


# ----------------------------------------------------------------------------
# .npz arrays.


def test_npz_with_train_and_test_arrays(tmp_path):
  rng = np.random.default_rng(0)
  x_train = rng.integers(0, 256, (20, 6, 6, 3), dtype=np.uint8)
  x_test = rng.integers(0, 256, (8, 6, 6, 3), dtype=np.uint8)
  path = str(tmp_path / 'arrays.npz')
  np.savez(path, x_train=x_train, y_train=np.arange(20) % 5, x_test=x_test,
           y_test=np.arange(8) % 5)
  config = {'name': path}
  assert data.dataset_kind(path) == data.dataset_kind(f'npz:{path}') == 'npz'
  info = data.dataset_info(config)
  assert (info.num_classes, info.image_shape, info.num_train, info.num_test) == (
      5, (6, 6, 3), 20, 8)
  assert info.class_names == ('0', '1', '2', '3', '4')
  np.testing.assert_allclose(info.mean, (x_train.reshape(-1, 3) / 255.0).mean(0))
  train, test = data.load_split(config, 'train'), data.load_split(config, 'test')
  images, labels = test.get(np.arange(8))
  np.testing.assert_array_equal(images, x_test)
  np.testing.assert_array_equal(labels, np.arange(8) % 5)
  np.testing.assert_array_equal(train.official_positions(), np.arange(20))  # File order.
  # A search's 'ordered' split of arrays sorted by class would split them by class.
  np.savez(path, x_train=x_train, y_train=np.sort(np.arange(20) % 5), x_test=x_test,
           y_test=np.arange(8) % 5)
  config = {'name': path, 'search_split': 'ordered'}
  assert 'search_split="random"' in _user_error(data.load_split, config, 'train')
  assert len(data.load_split(dict(config, search_split='random'), 'train')) == 20
  assert len(data.load_split(config, 'test')) == 8


def test_npz_float_images_and_named_labels_with_a_held_out_test(tmp_path, capsys):
  rng = np.random.default_rng(1)
  images = rng.random((30, 5, 4)).astype(np.float32)
  labels = np.array(['dog', 'cat', 'eel'] * 10)
  path = str(tmp_path / 'float.npz')
  np.savez(path, images=images, labels=labels)
  config = {'name': f'npz:{path}', 'test_fraction': 0.3, 'image_size': 8}
  info = data.dataset_info(config)
  assert 'config.dataset.test_fraction=0.3' in capsys.readouterr().err
  assert info.class_names == ('cat', 'dog', 'eel')
  assert (info.image_shape, info.num_train, info.num_test) == ((8, 8, 1), 21, 9)
  test_images, test_labels = data.load_split(config, 'test').get(np.arange(9))
  assert test_images.shape == (9, 8, 8, 1) and test_images.dtype == np.uint8
  assert np.bincount(test_labels).tolist() == [3, 3, 3]
  # Without resizing, the floats are scaled to 0..255.
  plain = data.load_split({'name': path}, 'train')
  assert plain.get(np.arange(1))[0].shape == (1, 5, 4, 1)
  assert plain.images.max() > 200


def test_npz_errors_are_one_line(tmp_path):
  path = str(tmp_path / 'bad.npz')
  np.savez(path, x_train=np.zeros((4, 3, 3), np.uint8), y_train=np.arange(4) % 2)
  message = _user_error(data.dataset_info, {'name': path})
  assert 'lacks x_test, y_test' in message
  np.savez(path, x_train=np.zeros((4, 3, 3), np.uint8), y_train=np.arange(4) % 2,
           x_test=np.zeros((2, 5, 5), np.uint8), y_test=np.arange(2))
  assert 'config.dataset.image_size' in _user_error(data.dataset_info, {'name': path})
  assert data.dataset_info({'name': path, 'image_size': 4}).image_shape == (4, 4, 1)
  np.savez(path, pictures=np.zeros((4, 3, 3), np.uint8))
  assert 'lacks' in _user_error(data.dataset_info, {'name': path})
  np.savez(path, images=np.zeros((4, 3, 3), np.uint8), labels=np.zeros(4, int))
  assert 'one class only' in _user_error(data.dataset_info, {'name': path})
  np.savez(path, images=np.full((4, 3, 3), 2.0), labels=np.arange(4) % 2)
  assert '[0, 1]' in _user_error(data.dataset_info, {'name': path})
  np.savez(path, images=np.zeros((4, 3, 3), np.uint8), labels=np.arange(3) % 2)
  assert 'one label per image' in _user_error(data.dataset_info, {'name': path})
  (tmp_path / 'junk.npz').write_bytes(b'not a zip')
  assert 'not an .npz' in _user_error(data.dataset_info, {'name': str(tmp_path / 'junk.npz')})
  assert 'cannot read' in _user_error(data.dataset_info, {'name': 'npz:/no/such/file.npz'})


# ----------------------------------------------------------------------------
# The built-in names through the new entry points; helpers.


def test_builtin_names_through_dataset_info_and_load_split():
  assert data.dataset_info({'name': 'digits'}) == data.get_info('digits')
  assert data.get_info('cifar10').class_names[0] == 'airplane'
  assert datasets.DatasetInfo('x', 2, (4, 4, 1), (0.5,), (0.5,), 1, 1).class_names == ()
  expected = data.load_source('digits', 'test').get(np.arange(5))
  got = data.load_split({'name': 'digits', 'data_dir': ''}, 'test').get(np.arange(5))
  np.testing.assert_array_equal(expected[0], got[0])
  config = {'name': 'digits', 'image_size': 16}
  assert data.dataset_info(config).image_shape == (16, 16, 1)
  images, _ = data.load_split(config, 'train').get(np.arange(3))
  assert images.shape == (3, 16, 16, 1)
  assert 'imagenet2012' in _user_error(data.dataset_info,
                                       {'name': 'imagenet2012', 'image_size': 64})
  assert 'unknown split' in _user_error(data.load_split, {'name': 'digits'}, 'validation')
  assert 'image_size' in _user_error(data.dataset_info, {'name': 'digits', 'image_size': -1})


def test_stratified_holdout_and_order():
  labels = np.array([0] * 10 + [1] * 3 + [2] * 1)
  train, test = custom_base.stratified_holdout(labels, 0.3)
  assert np.bincount(labels[test], minlength=3).tolist() == [3, 1, 0]
  np.testing.assert_array_equal(np.union1d(train, test), np.arange(14))
  again = custom_base.stratified_holdout(labels, 0.3)
  np.testing.assert_array_equal(again[1], test)
  order = custom_base.stratified_order(np.array([0] * 6 + [1] * 6))
  assert sorted(order.tolist()) == list(range(12))
  assert np.bincount(np.array([0] * 6 + [1] * 6)[order[:6]]).tolist() == [3, 3]


# ----------------------------------------------------------------------------
# A tiny search on each kind of data, end to end (the trainers read config.dataset whole).


def _tiny_search_on(name: str, data_dir: str, workdir: str, **dataset):
  from darts_jax import configs  # pylint: disable=g-import-not-at-top
  from darts_jax.train import search  # pylint: disable=g-import-not-at-top
  config = configs.search_tiny_config()
  config.dataset.name, config.dataset.data_dir = name, data_dir
  config.dataset.update(dataset)
  config.train.batch_size, config.eval_batch_size = 4, 4
  config.max_steps_per_epoch, config.train.epochs = 2, 1
  config.model.layers = 2
  result = search.search(config, workdir)
  assert result['genotype'].startswith('Genotype(')
  assert os.path.exists(os.path.join(workdir, 'genotype.json'))
  return result


@pytest.mark.slow
def test_a_tiny_search_on_a_tfds_data_set_by_name(tmp_path):
  with tfds.testing.mock_data(num_examples=24, data_dir=str(tmp_path / 'tfds')):
    _tiny_search_on('svhn_cropped', str(tmp_path / 'tfds'), str(tmp_path / 'run'),
                    search_split='random')


@pytest.mark.slow
def test_a_tiny_search_on_an_image_folder(tmp_path):
  _write_folder(tmp_path / 'images', {'a': 10, 'b': 10, 'c': 10}, shape=(8, 8))
  _tiny_search_on(f'folder:{tmp_path / "images"}', '', str(tmp_path / 'run'))


@pytest.mark.slow
def test_a_tiny_search_on_an_npz(tmp_path):
  rng = np.random.default_rng(0)
  path = tmp_path / 'arrays.npz'
  np.savez(path, x_train=rng.integers(0, 256, (40, 8, 8), dtype=np.uint8),
           y_train=np.tile(np.arange(4), 10), x_test=rng.integers(0, 256, (8, 8, 8),
                                                                  dtype=np.uint8),
           y_test=np.tile(np.arange(4), 2))
  _tiny_search_on(str(path), '', str(tmp_path / 'run'))

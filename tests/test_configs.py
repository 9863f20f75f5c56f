"""Every config in experiments/ loads, has every field its trainer reads, and validates."""

import glob
import importlib.util
import os

import pytest

from darts_jax import configs
from darts_jax import data
from darts_jax import spaces
from darts_jax.errors import UserError
from darts_jax.train import checks
from darts_jax.train import parts as train_parts

EXPERIMENTS = os.path.join(os.path.dirname(__file__), '..', 'experiments')
NOT_CONFIGS = ('benchmark.py', 'benchmark_tables.py', 'pytorch_augment_reference.py',
               'pytorch_reference.py',
               'render_report.py')
CONFIG_FILES = sorted(os.path.basename(p) for p in glob.glob(os.path.join(EXPERIMENTS, '*.py'))
                      if os.path.basename(p) not in NOT_CONFIGS)


def _load(name):
  spec = importlib.util.spec_from_file_location(name[:-3], os.path.join(EXPERIMENTS, name))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def _fields(config, prefix=''):
  """Dotted paths of every leaf field."""
  paths = set()
  for key, value in config.items():
    if hasattr(value, 'items'):
      paths |= _fields(value, f'{prefix}{key}.')
    else:
      paths.add(prefix + key)
  return paths


def _check(config):
  """The field check and the trainer's own validation of a search or augment config."""
  base = configs.search_config() if config.mode == 'search' else configs.augment_config()
  missing = _fields(base) - _fields(config)
  assert not missing, f'fields the {config.mode} trainer reads are missing: {sorted(missing)}'
  info = data.get_info(config.dataset.name)
  if config.mode == 'search':
    train_parts.check_config(config, info, num_devices=1, process_count=1)
    return
  checks.check_evaluation(config, num_devices=1, process_count=1)
  space, arch = spaces.load_arch(config.genotype, config.get('search_space', {}).get('name', ''))
  space.eval_network(arch, config.model, info)


def test_every_config_file_is_checked():
  assert 'augment_imagenet.py' in CONFIG_FILES and 'custom_space.py' in CONFIG_FILES
  assert len(CONFIG_FILES) >= 12


@pytest.mark.parametrize('name', CONFIG_FILES)
def test_config_has_every_field_and_validates(name):
  config = _load(name)
  if config.mode == 'pipeline':
    _check(config.search)
    _check(config.augment)
  else:
    _check(config)


def test_color_jitter_is_for_imagenet_only():
  config = configs.augment_config()
  config.train.color_jitter = (0.4, 0.4, 0.4, 0.2)
  with pytest.raises(UserError, match='applied to ImageNet only.*set it to \\(\\) for cifar10'):
    _check(config)
  config.dataset.name = 'imagenet2012'
  config.train.color_jitter = (0.4, 0.4, 0.4, 0.7)
  with pytest.raises(UserError, match='hue <= 0.5'):
    _check(config)

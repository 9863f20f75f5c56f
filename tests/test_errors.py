"""Bad input: one clear `error:` line (a UserError), never a traceback, nothing lost."""

import os
import subprocess
import sys

import pytest

from darts_jax import genotypes
from darts_jax import main
from darts_jax.errors import UserError

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'experiments'))
import search_tiny  # pylint: disable=g-import-not-at-top,wrong-import-position


def _set(path, value):
  def edit(config):
    node = config
    *parents, leaf = path.split('.')
    for p in parents:
      node = node[p]
    node[leaf] = value
  return edit


CASES = [
    ('unknown dataset', _set('dataset.name', 'cifar11'), 'cifar11'),
    ('unknown op', _set('search_space.primitives', ['sep_conv_3x3', 'conv_9x9']), 'conv_9x9'),
    ('duplicate op', _set('search_space.primitives', ['skip_connect', 'skip_connect']), 'twice'),
    ('unknown order', _set('arch.order', 'third'), 'third'),
    ('zero epochs', _set('train.epochs', 0), 'epochs'),
    ('negative batch', _set('train.batch_size', -4), 'batch_size'),
    ('zero channels', _set('model.init_channels', 0), 'init_channels'),
    ('zero layers', _set('model.layers', 0), 'layers'),
    ('batch larger than the split', _set('train.batch_size', 4096), 'larger'),
    ('unknown mode', _set('mode', 'train'), 'mode'),
    ('bad train portion', _set('dataset.train_portion', 1.5), 'portion'),
]


@pytest.mark.parametrize('name,edit,fragment', CASES, ids=[c[0] for c in CASES])
def test_bad_config(tmp_path, name, edit, fragment):
  del name
  config = search_tiny.get_config()
  edit(config)
  with pytest.raises(UserError, match=fragment) as info:
    main.run(config, str(tmp_path / 'w'))
  assert '\n' not in str(info.value)


def test_workdir_is_a_file(tmp_path):
  path = tmp_path / 'file'
  path.write_text('keep me')
  with pytest.raises(UserError, match='is a file'):
    main.run(search_tiny.get_config(), str(path))
  assert path.read_text() == 'keep me'


def test_workdir_of_another_mode(tmp_path):
  (tmp_path / 'config.json').write_text('{"mode": "augment"}')
  with pytest.raises(UserError, match="'augment' run"):
    main.run(search_tiny.get_config(), str(tmp_path))
  assert (tmp_path / 'config.json').read_text() == '{"mode": "augment"}'


@pytest.mark.parametrize('text', ["Genotype(normal=[('sep_conv_3x3', 0)", 'DARTS_V9',
                                  "__import__('os').system('true')"])
def test_malformed_genotype(text):
  with pytest.raises(genotypes.GenotypeError) as info:
    genotypes.load_genotype(text)
  assert '\n' not in str(info.value)


def test_main_prints_one_error_line_and_exits_2(tmp_path):
  proc = subprocess.run(
      [sys.executable, '-m', 'darts_jax.main', '--config=experiments/search_tiny.py',
       f'--workdir={tmp_path}', '--config.dataset.name=nope', '--compilation_cache='],
      cwd=os.path.join(os.path.dirname(__file__), '..'), capture_output=True, text=True,
      check=False)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1].startswith('error: ')
  assert 'Traceback' not in proc.stderr

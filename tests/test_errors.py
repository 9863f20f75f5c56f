"""Bad input: one clear `error:` line (a UserError), never a traceback, nothing lost."""

import os
import subprocess
import sys
import tempfile

import pytest

from darts_jax import configs
from darts_jax import data
from darts_jax import main
from darts_jax.errors import UserError
from darts_jax.spaces.darts import zoo
from darts_jax.spaces.darts.genotype import GenotypeError
from darts_jax.train import checks
from darts_jax.train import parts as train_parts


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
    ('unknown search split', _set('dataset.search_split', 'first_half'),
     'neither "ordered", "random" nor a file'),
    ('ordered split of a subset', _set('dataset.search_subset', 0.5),
     'search_split="random" with it'),
    ('negative seed', _set('seed', -1), 'seed'),
    ('zero cell steps', _set('search_space.steps', 0), 'steps'),
    ('multiplier above steps', _set('search_space.multiplier', 5), 'multiplier'),
    ("only the 'none' op", _set('search_space.primitives', ['none']), 'none'),
    ('negative crop padding', _set('train.crop_padding', -1), 'crop_padding'),
    ('unknown depthwise lowering', _set('model.depthwise_impl', 'fft'), 'fft'),
    ('unknown remat value', _set('model.remat', 'sometimes'), "'auto', 'true' or 'false'"),
    ('zero eval batch', _set('eval_batch_size', 0), 'eval_batch_size'),
    ('negative checkpoint interval', _set('checkpoint_every_steps', -5),
     'checkpoint_every_steps'),
    ('zero checkpoints kept', _set('checkpoints_to_keep', 0), 'checkpoints_to_keep'),
    ('data not prepared', lambda c: (_set('dataset.name', 'cifar10')(c),
                                     _set('dataset.data_dir', tempfile.mkdtemp())(c)),
     'not prepared'),
]

AUGMENT_CASES = [
    ('unknown zoo genotype', _set('genotype', 'DARTS_V9'), 'DARTS_V9'),
    ('malformed genotype text', _set('genotype', "Genotype(normal=[('sep_conv_3x3', 0)"),
     'malformed genotype'),
    ('genotype op not in the registry', _set('genotype', (
        "Genotype(normal=[('conv_9x9', 0), ('skip_connect', 1)], normal_concat=[2], "
        "reduce=[('skip_connect', 0), ('skip_connect', 1)], reduce_concat=[2])")),
     'conv_9x9'),
    ('unknown network', _set('model.network', 'resnet'), 'resnet'),
    ('unknown lr schedule', _set('train.lr_schedule', 'step'), 'lr_schedule'),
    ('label smoothing of 1.5', _set('train.label_smoothing', 1.5), 'label_smoothing'),
    ('drop path of 1.5', _set('model.drop_path_prob', 1.5), 'drop_path_prob'),
    ('negative cutout', _set('train.cutout', -1), 'cutout'),
    ('zero augment layers', _set('model.layers', 0), 'layers'),
    ('unknown augment dataset', _set('dataset.name', 'cifar11'), 'cifar11'),
]


@pytest.mark.parametrize('name,edit,fragment', CASES, ids=[c[0] for c in CASES])
def test_bad_config(tmp_path, name, edit, fragment):
  del name
  config = configs.search_tiny_config()
  edit(config)
  _assert_clear_error(config, tmp_path, fragment)


@pytest.mark.parametrize('name,edit,fragment', AUGMENT_CASES, ids=[c[0] for c in AUGMENT_CASES])
def test_bad_augment_config(tmp_path, name, edit, fragment):
  del name
  config = configs.augment_digits_config()
  edit(config)
  _assert_clear_error(config, tmp_path, fragment)


def _assert_clear_error(config, tmp_path, fragment):
  """One-line UserError naming `fragment`; a file already in the workdir survives."""
  workdir = tmp_path / 'w'
  workdir.mkdir()
  (workdir / 'keep.txt').write_text('keep me')
  with pytest.raises(UserError, match=fragment) as info:
    main.run(config, str(workdir))
  assert '\n' not in str(info.value)
  assert (workdir / 'keep.txt').read_text() == 'keep me'


def test_workdir_is_a_file(tmp_path):
  path = tmp_path / 'file'
  path.write_text('keep me')
  with pytest.raises(UserError, match='is a file'):
    main.run(configs.search_tiny_config(), str(path))
  assert path.read_text() == 'keep me'


def test_workdir_below_a_file(tmp_path):
  path = tmp_path / 'file'
  path.write_text('keep me')
  with pytest.raises(UserError, match='cannot create workdir'):
    main.run(configs.search_tiny_config(), str(path / 'run'))
  assert path.read_text() == 'keep me'


def test_augment_in_a_search_workdir(tmp_path):
  (tmp_path / 'config.json').write_text('{"mode": "search"}')
  with pytest.raises(UserError, match="'search' run"):
    main.run(configs.augment_digits_config(), str(tmp_path))
  assert (tmp_path / 'config.json').read_text() == '{"mode": "search"}'


def test_workdir_of_another_mode(tmp_path):
  (tmp_path / 'config.json').write_text('{"mode": "augment"}')
  with pytest.raises(UserError, match="'augment' run"):
    main.run(configs.search_tiny_config(), str(tmp_path))
  assert (tmp_path / 'config.json').read_text() == '{"mode": "augment"}'


@pytest.mark.parametrize('text', ["Genotype(normal=[('sep_conv_3x3', 0)", 'DARTS_V9',
                                  "__import__('os').system('true')"])
def test_malformed_genotype(text):
  with pytest.raises(GenotypeError) as info:
    zoo.load_genotype(text)
  assert '\n' not in str(info.value)


@pytest.mark.slow
def test_main_prints_one_error_line_and_exits_2(tmp_path):
  proc = subprocess.run(
      [sys.executable, '-m', 'darts_jax.main', '--config=experiments/search_tiny.py',
       f'--workdir={tmp_path}', '--config.dataset.name=nope', '--compilation_cache='],
      cwd=os.path.join(os.path.dirname(__file__), '..'), capture_output=True, text=True,
      check=False)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1].startswith('error: ')
  assert 'Traceback' not in proc.stderr


ROOT = os.path.join(os.path.dirname(__file__), '..')
COMMAND_CASES = [
    ('unknown config field', ['--config.train.epochz=3'], 'unknown config field epochz'),
    ('unknown top-level field', ['--config.colour=red'], 'unknown config field colour'),
    ('wrong value type', ['--config.train.epochs=many'], 'many'),
    ('missing config file', ['--config=experiments/nope.py'],
     'config file experiments/nope.py not found'),
    ('no config', ['--config='], 'config'),
    ('unknown config file argument', ['--config=experiments/search_cifar10.py:third'],
     'search_cifar10.py:third: unknown search order third; use one of'),
    ('batch not divisible by devices', ['--config.train.batch_size=15', '--devices=2'],
     'does not divide across 2 devices'),
    # The op set is a tuple field, so the command line can set it (and it is checked).
    ('unknown op in the command-line op set',
     ["--config.search_space.primitives=('skip_connect', 'conv_9x9')"], 'conv_9x9'),
    # data_dir is a string field, so the command line can set it.
    ('data not prepared in the given data_dir', [
        '--config.dataset.name=cifar10', '--config.dataset.data_dir=/nonexistent/tfds'],
     'not prepared under /nonexistent/tfds'),
    ('augment data not prepared in the given data_dir', [
        '--config=experiments/augment_cifar10.py',
        '--config.dataset.data_dir=/nonexistent/tfds'], 'not prepared under /nonexistent/tfds'),
]


TOOL_CASES = [  # (module, args; {tmp} is a fresh directory, {file} a file in it, fragment)
    ('darts_jax.summary', ['--genotype=DARTS_V2', '--config=experiments/nope.py:x'],
     'config file experiments/nope.py not found'),
    ('darts_jax.summary', ['--genotype=DARTS_V2'], 'no --config given'),
    ('darts_jax.visualize', ['--genotype=DARTS_V2', '--out={file}/cells'],
     'cannot create --out directory'),
    ('darts_jax.report', ['--workdir={tmp}'], 'holds no run (no config.json)'),
    ('darts_jax.report', ['--workdirr={tmp}'], 'flag workdirr. Did you mean: workdir'),
    ('darts_jax.main', ['--config=experiments/search_tiny.py', '--workdir={tmp}', 'extra'],
     'unexpected arguments extra'),
    ('darts_jax.torch_weights', ['--config=experiments/augment_cifar10.py',
                                 '--weights={tmp}/nope.pt'], 'weights file'),
    ('darts_jax.torch_weights', ['--config=experiments/augment_cifar10.py'],
     '--weights must have a value'),
]


@pytest.mark.slow
@pytest.mark.parametrize('module,args,fragment', TOOL_CASES,
                         ids=[f'{c[0]} {c[2]}' for c in TOOL_CASES])
def test_tool_error_is_one_line(tmp_path, module, args, fragment):
  """Every entry point (darts_jax.cli.run): bad input is one `error:` line, exit 2."""
  (tmp_path / 'file').write_text('')
  args = [a.format(tmp=tmp_path, file=tmp_path / 'file') for a in args]
  proc = subprocess.run([sys.executable, '-m', module, *args], cwd=ROOT, capture_output=True,
                        text=True, check=False, env=dict(os.environ, JAX_PLATFORMS='cpu'))
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert 'Traceback' not in proc.stderr
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith('error: ') and fragment in last, last
  assert '--config.<field>' not in last  # That hint is for config overrides only.
  assert not os.path.exists(tmp_path / 'report.html')


@pytest.mark.slow
@pytest.mark.parametrize('name,args,fragment', COMMAND_CASES, ids=[c[0] for c in COMMAND_CASES])
def test_command_line_error_is_one_line(tmp_path, name, args, fragment):
  del name
  env = dict(os.environ)
  if '--devices=2' in args:
    args = [a for a in args if a != '--devices=2']
    env['XLA_FLAGS'] = env.get('XLA_FLAGS', '') + ' --xla_force_host_platform_device_count=2'
  config = [] if any(a.startswith('--config=') for a in args) else [
      '--config=experiments/search_tiny.py']
  proc = subprocess.run(
      [sys.executable, '-m', 'darts_jax.main', *config, f'--workdir={tmp_path / "w"}',
       '--compilation_cache=', *args],
      cwd=ROOT, capture_output=True, text=True, check=False, env=env)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert 'Traceback' not in proc.stderr
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith('error: ') and fragment in last, last


def test_unknown_compute_dtype_and_bfloat16_warning_on_cpu(caplog):
  config = configs.search_tiny_config()
  config.model.compute_dtype = 'float16'
  with pytest.raises(UserError, match="use one of \\('float32', 'bfloat16'\\)"):
    checks.check_compute_dtype(config.model)
  config.model.compute_dtype = 'bfloat16'
  with caplog.at_level('WARNING'):
    checks.check_compute_dtype(config.model)
  assert any('use float32 on CPU' in r.getMessage() for r in caplog.records)
  caplog.clear()
  config.model.compute_dtype = 'float32'
  checks.check_compute_dtype(config.model)
  assert not caplog.records


def test_finite_difference_second_order_needs_float32():
  config = configs.search_tiny_config('second_fd')
  config.model.compute_dtype = 'bfloat16'
  info = data.get_info(config.dataset.name)
  with pytest.raises(UserError, match="second_fd perturbs the weights.*compute_dtype='float32'"):
    train_parts.check_config(config, info, 1, 1)
  config.arch.order = 'second_exact'
  train_parts.check_config(config, info, 1, 1)

"""Export of evaluation runs (StableHLO, ONNX) and prediction with the exports.

The slow tests train a tiny network of each space (a DARTS genotype with every evaluation
op, a NAS-Bench-201 cell with a pool, a 'none' edge and both convs) for two steps, export
both formats and compare their logits with JAX's. The fast ones check the manifest, the
rewrite of darts_jax's primitives and the error messages without training.
"""

import importlib.util
import json
import os
import subprocess
import sys
import types

from absl import flags
import jax
import jax.extend.core as jex_core
import jax.numpy as jnp
from jax.interpreters import mlir
import numpy as np
from PIL import Image
import pytest

from darts_jax import configs
from darts_jax import data
from darts_jax.configs import benchmarks
from darts_jax.deploy import exporter
from darts_jax.deploy import loading
from darts_jax.deploy import lowering
from darts_jax.deploy import manifest as manifest_lib
from darts_jax.deploy import onnx as onnx_lib
from darts_jax.deploy import predict
from darts_jax.deploy import stablehlo
from darts_jax.errors import UserError
from darts_jax.nn import conv
from darts_jax.nn import pooling
from darts_jax.runtime import checkpoint
from darts_jax.train import augment
from darts_jax import predict as predict_cli



def _installed(name):
  try:
    return importlib.util.find_spec(name) is not None
  except (ImportError, ValueError):  # ValueError: sys.modules[name] is None.
    return False


HAVE_ONNX = all(_installed(name) for name in onnx_lib.PACKAGES)
needs_onnx = pytest.mark.skipif(not HAVE_ONNX, reason='jax2onnx, onnx, onnxruntime missing')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Every op of the DARTS evaluation cells, in the normal cell (cell 0 of 3) and the
# reduction cells (strided and dilated depthwise convs, both pools, FactorizedReduce).
ALL_OPS_GENOTYPE = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('dil_conv_3x3', 1), ('avg_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 0), ('sep_conv_5x5', 2), ('dil_conv_5x5', 1), "
    "('conv_7x1_1x7', 0)], normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), "
    "('avg_pool_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 2), ('dil_conv_3x3', 1), "
    "('sep_conv_7x7', 0), ('dil_conv_5x5', 2), ('conv_7x1_1x7', 1)], "
    "reduce_concat=range(2, 6))")
NB201_ARCH = ('|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+'
              '|skip_connect~0|none~1|nor_conv_3x3~2|')


def darts_config():
  config = configs.augment_digits_config()
  config.genotype = ALL_OPS_GENOTYPE
  config.model.layers = 3
  config.model.init_channels = 4
  config.train.epochs = 1
  config.max_steps_per_epoch = 2
  config.checkpoint_every_steps = 0
  return config


def nb201_config():
  config = benchmarks.augment_nb201('tiny')
  config.genotype = NB201_ARCH
  config.max_steps_per_epoch = 2
  return config


CONFIGS = {'darts': darts_config, 'nb201': nb201_config}


@pytest.fixture(scope='module', params=sorted(CONFIGS))
def exported(request, tmp_path_factory):
  """A trained tiny run of one space, exported in every format installed here."""
  workdir = str(tmp_path_factory.mktemp(f'run_{request.param}'))
  result = augment.train_and_evaluate(CONFIGS[request.param](), workdir)
  lines = []
  formats = manifest_lib.FORMATS if HAVE_ONNX else ('stablehlo',)
  manifest = exporter.export_run(workdir, formats, log=lines.append)
  return types.SimpleNamespace(
      space=request.param, workdir=workdir, out=os.path.join(workdir, 'export'),
      manifest=manifest, lines=lines, result=result, run=loading.load_run(workdir))


def _loader(fmt, out):
  return (stablehlo if fmt == 'stablehlo' else onnx_lib).load(
      os.path.join(out, manifest_lib.FILES[fmt]))


def _formats():
  return [pytest.param('stablehlo'), pytest.param('onnx', marks=needs_onnx)]


# --- Slow: trained runs, exports, subprocesses. -----------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize('fmt', _formats())
def test_exported_logits_equal_jax_at_any_batch_size(exported, fmt):
  logits = _loader(fmt, exported.out)
  rng = np.random.default_rng(1)
  tolerance = {'stablehlo': 1e-5, 'onnx': 1e-4}[fmt]
  for batch in (1, 7):
    images = rng.integers(0, 256, (batch,) + exported.run.image_shape, dtype=np.uint8)
    got = logits(images)
    assert got.shape == (batch, exported.run.info.num_classes)
    assert loading.max_abs_diff(got, loading.reference_logits(exported.run, images)) <= tolerance
  entry = exported.manifest['formats'][fmt]
  assert entry['max_abs_diff'] <= tolerance and entry['within_tolerance']
  assert any(f'max |{fmt} - jax| logits' in line and '64 digits test images' in line
             for line in exported.lines), exported.lines


@pytest.mark.slow
def test_manifest_of_an_export(exported):
  m = exported.manifest
  with open(os.path.join(exported.out, manifest_lib.MANIFEST)) as f:
    assert json.load(f) == json.loads(json.dumps(m))
  assert m['input']['shape'] == [None, 8, 8, 1] and m['input']['dtype'] == 'uint8'
  assert m['input']['symbolic_shape'][0] == 'b'
  assert m['normalization']['inside_model'] is True
  assert m['normalization']['mean'] == list(data.get_info('digits').mean)
  assert m['classes'] == [str(i) for i in range(10)]
  assert m['space'] == exported.space
  assert m['genotype'] == exported.result['genotype']
  assert m['test_acc'] == exported.result['test_acc']
  assert m['checkpoint_step'] == 2
  assert set(m['versions']) >= {'darts_jax', 'jax', 'jaxlib'}
  assert set(m['load']) == set(m['formats'])
  for fmt, entry in m['formats'].items():
    assert os.path.getsize(os.path.join(exported.out, entry['file'])) == entry['bytes']
  assert m['formats']['stablehlo']['platforms'] == list(stablehlo.PLATFORMS)


@pytest.mark.slow
@pytest.mark.parametrize('fmt', _formats())
def test_load_snippet_runs_without_darts_jax(exported, fmt, tmp_path):
  out_file = str(tmp_path / 'logits.npy')
  code = exported.manifest['load'][fmt] + (
      'import sys\n'
      "assert not [m for m in sys.modules if m.split('.')[0] == 'darts_jax'], 'darts_jax'\n"
      f'np.save({out_file!r}, logits)\n')
  subprocess.run([sys.executable, '-c', code], cwd=exported.out, check=True)
  images = np.zeros((4,) + exported.run.image_shape, np.uint8)
  assert loading.max_abs_diff(np.load(out_file),
                              loading.reference_logits(exported.run, images)) <= 1e-4


@pytest.mark.slow
def test_export_for_other_platforms_is_written_but_not_checked(exported, tmp_path):
  lines = []
  m = exporter.export_run(exported.workdir, ('stablehlo',), str(tmp_path), ('tpu',),
                          log=lines.append)
  assert m['formats']['stablehlo']['platforms'] == ['tpu']
  assert m['formats']['stablehlo']['max_abs_diff'] is None
  assert any('not checked: exported for tpu only' in line for line in lines), lines
  with pytest.raises(UserError, match='exported for tpu, not for this cpu machine'):
    stablehlo.load(str(tmp_path / 'model.stablehlo'))


def _pngs(tmp_path):
  """Two digits test images (8x8 grayscale) and a 20x20 RGB picture (converted, resized)."""
  images, _ = data.load_source('digits', 'test').get(np.arange(2))
  paths = []
  for i, image in enumerate(images):
    paths.append(str(tmp_path / f'digit{i}.png'))
    Image.fromarray(image[..., 0]).save(paths[-1])
  paths.append(str(tmp_path / 'colour.png'))
  rgb = np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8)
  Image.fromarray(rgb).save(paths[-1])
  return paths


def _parse_predictions(stdout):
  blocks, current = {}, None
  for line in stdout.splitlines():
    if not line.startswith(' '):
      current = line.rsplit(' (', 1)[0]
      blocks[current] = []
    else:
      prob, name = line.split()
      blocks[current].append((name, float(prob)))
  return blocks


@pytest.mark.slow
@pytest.mark.parametrize('fmt', _formats())
def test_predict_cli_prints_the_top5_of_each_image(exported, fmt, tmp_path):
  paths = _pngs(tmp_path)
  proc = subprocess.run(
      [sys.executable, '-m', 'darts_jax.predict', '--model', exported.out, f'--format={fmt}',
       *paths], cwd=REPO, capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr
  blocks = _parse_predictions(proc.stdout)
  assert list(blocks) == paths
  images = np.stack([predict.read_image(p, exported.run.image_shape) for p in paths])
  probs = predict.softmax(loading.reference_logits(exported.run, images))
  classes = exported.manifest['classes']
  for path, row in zip(paths, probs):
    top = blocks[path]
    assert len(top) == 5
    assert [p for _, p in top] == sorted((p for _, p in top), reverse=True)
    assert top[0][0] == classes[int(np.argmax(row))]
    for name, prob in top:
      assert abs(prob - row[classes.index(name)]) <= 2e-4
  assert f'({fmt}):' in proc.stdout


def _error_line(args):
  proc = subprocess.run([sys.executable, '-m', *args], cwd=REPO, capture_output=True,
                        text=True)
  assert proc.returncode == 2, proc.stderr
  errors = [l for l in proc.stderr.splitlines() if l.startswith('error:')]
  assert len(errors) == 1, proc.stderr
  return errors[0]


@pytest.mark.slow
def test_export_cli_error_lines(tmp_path):
  line = _error_line(['darts_jax.export', f'--workdir={tmp_path / "nope"}'])
  assert 'nope not found; pass the workdir of an evaluation run' in line
  checkpoint.prepare_workdir(str(tmp_path), darts_config(), mode='augment')
  line = _error_line(['darts_jax.export', f'--workdir={tmp_path}', '--format=stablehlo'])
  assert 'has no checkpoint in' in line and 'train the run first' in line


@pytest.mark.slow
def test_predict_cli_error_line_for_an_unreadable_image(exported, tmp_path):
  bad = tmp_path / 'bad.png'
  bad.write_text('not a picture')
  line = _error_line(['darts_jax.predict', f'--model={exported.out}', str(bad)])
  assert f'cannot read image {bad}' in line
  line = _error_line(['darts_jax.predict', f'--model={exported.out}', str(tmp_path / 'x.png')])
  assert 'x.png not found' in line


# --- Fast: manifest, rewrite, errors. ----------------------------------------------------


@pytest.fixture(scope='module')
def untrained_run():
  """A Run of the tiny DARTS network with initial weights (no training, no workdir)."""
  config = darts_config()
  info = data.get_info('digits')
  from darts_jax import spaces  # pylint: disable=g-import-not-at-top
  space, arch = spaces.load_arch(config.genotype)
  model = space.eval_network(arch, config.model, info)
  state = augment.init_state(model, info.image_shape, 0)
  return loading.Run(workdir='/nowhere', config=config, space=space, arch=arch, info=info,
                     model=model, variables={'params': state['params'],
                                             'batch_stats': state['batch_stats']},
                     step=0, result={'test_acc': 0.5})


def test_manifest_fields(untrained_run):
  m = manifest_lib.build(untrained_run, {'stablehlo': {'file': 'model.stablehlo'}},
                         {'jax': jax.__version__}, '64 digits test images')
  json.dumps(m)  # JSON as written.
  assert m['input'] == {'name': 'images', 'shape': [None, 8, 8, 1],
                        'symbolic_shape': ['b', 8, 8, 1], 'dtype': 'uint8',
                        'layout': 'NHWC', 'channels': 'grayscale'}
  assert m['normalization']['inside_model'] and m['normalization']['scale'] == 1 / 255
  assert m['space'] == 'darts' and m['genotype'].startswith('Genotype(normal=')
  assert m['test_acc'] == 0.5 and m['test_top5_acc'] is None
  assert list(m['load']) == ['stablehlo']
  assert 'jax.export.deserialize' in m['load']['stablehlo']
  assert len(m['load']['stablehlo'].splitlines()) == 5


def test_class_names():
  assert manifest_lib.class_names('cifar10', 10)[0] == 'airplane'
  names = manifest_lib.class_names('cifar100', 100)
  assert len(set(names)) == 100 and names[:2] == ['apple', 'aquarium_fish']
  assert manifest_lib.class_names('imagenet2012', 1000)[999] == '999'
  assert manifest_lib.class_names('fashion_mnist', 10)[9] == 'Ankle boot'


def _probe(x):
  """Every custom primitive of nn.conv and nn.pooling in one function."""
  c = x.shape[-1]
  k3 = jnp.linspace(-1., 1., 9 * c).reshape(3, 3, c)
  k5 = jnp.linspace(1., -1., 25 * c).reshape(5, 5, c)
  parts = [conv.depthwise_conv(x, k3, 1, 1, impl='slices'),
           conv.depthwise_conv(x, k5, 2, 2, impl='slices'),
           conv.depthwise_conv(x, k3, 1, 2, impl='loop'),
           pooling.avg_pool_3x3(x, 1), pooling.avg_pool_3x3(x, 2),
           pooling.max_pool_3x3(x, 2)]
  return jnp.concatenate([p.reshape(x.shape[0], -1) for p in parts], axis=1)


@pytest.mark.parametrize('table', ['STABLEHLO', 'ONNX'])
def test_rewrite_keeps_the_values(table):
  spec = jax.ShapeDtypeStruct((2, 9, 9, 3), jnp.float32)
  onnx_like = table == 'ONNX'
  fn = lowering.rewrite(_probe, spec, getattr(lowering, table), inline_own=onnx_like,
                        fold=onnx_like)
  x = jax.random.normal(jax.random.key(0), spec.shape)
  np.testing.assert_allclose(jax.jit(fn)(x), _probe(x), atol=1e-5)
  before, after = lowering.primitive_names(_probe, spec), lowering.primitive_names(fn, spec)
  assert {'darts_depthwise_conv', 'darts_box_sum_3x3'} <= before
  if onnx_like:
    assert not {n for n in after if n.startswith('darts_')}, after
    assert 'conv_general_dilated' in after


def test_symbolic_batch_stablehlo_export_of_the_probe():
  fn = lambda images: _probe(images.astype(jnp.float32) / 255)  # noqa: E731
  exported = stablehlo.export(fn, (9, 9, 3), platforms=('cpu',))
  x = np.random.default_rng(0).integers(0, 256, (3, 9, 9, 3), dtype=np.uint8)
  np.testing.assert_allclose(exported.call(x), fn(x), atol=1e-5)
  assert str(exported.in_avals[0].shape[0]) == 'b'


@needs_onnx
def test_onnx_names_a_primitive_it_cannot_convert():
  mystery = jex_core.Primitive('mystery_op')
  mystery.def_impl(lambda x: x)
  mystery.def_abstract_eval(lambda x: jax.core.ShapedArray(x.shape, x.dtype))
  mlir.register_lowering(mystery, mlir.lower_fun(lambda x: x, multiple_results=False))
  with pytest.raises(UserError, match="cannot convert the JAX primitive 'mystery_op'.*"
                                      'format=stablehlo'):
    onnx_lib.export(lambda x: mystery.bind(x.astype(jnp.float32)), (4, 4, 1))


def test_load_run_errors(tmp_path):
  with pytest.raises(UserError, match='workdir .*nope not found'):
    loading.load_run(str(tmp_path / 'nope'))
  with pytest.raises(UserError, match='has no config.json: not a darts_jax run'):
    loading.load_run(str(tmp_path))
  (tmp_path / 'config.json').write_text(json.dumps({'mode': 'search'}))
  with pytest.raises(UserError, match="holds a 'search' run, not an evaluation"):
    loading.load_run(str(tmp_path))
  (tmp_path / 'config.json').write_text(json.dumps({'mode': 'pipeline'}))
  with pytest.raises(UserError, match='--workdir=.*augment'):
    loading.load_run(str(tmp_path))
  run = tmp_path / 'run'
  checkpoint.prepare_workdir(str(run), darts_config(), mode='augment')
  with pytest.raises(UserError, match='has no checkpoint in .*train the run first'):
    loading.load_run(str(run))
  assert not (run / 'checkpoints').exists()  # Looking created nothing.


def test_option_errors():
  assert exporter.parse_formats('all') == ('stablehlo', 'onnx')
  assert exporter.parse_formats('onnx,stablehlo') == ('stablehlo', 'onnx')
  with pytest.raises(UserError, match='unknown --format tflite; use stablehlo, onnx or all'):
    exporter.parse_formats('tflite')
  with pytest.raises(UserError, match='unknown platform.*gpu'):
    stablehlo.check_platforms(['cpu', 'gpu'])
  manifest = {'formats': {'onnx': {}}}
  assert predict.choose_format(manifest, None) == 'onnx'
  with pytest.raises(UserError, match='no stablehlo model.*--format=onnx'):
    predict.choose_format(manifest, 'stablehlo')


def test_predict_input_errors(tmp_path):
  with pytest.raises(UserError, match='model directory .* not found'):
    predict.load_model(str(tmp_path / 'nope'))
  with pytest.raises(UserError, match='has no manifest.json; export a run'):
    predict.load_model(str(tmp_path))
  with pytest.raises(UserError, match=r'image .*missing.png not found'):
    predict.read_image(str(tmp_path / 'missing.png'), (8, 8, 1))
  bad = tmp_path / 'bad.png'
  bad.write_bytes(b'\x89PNG but not really')
  with pytest.raises(UserError, match='cannot read image .*bad.png'):
    predict.read_image(str(bad), (8, 8, 1))
  with pytest.raises(UserError, match='is a directory'):
    predict.read_image(str(tmp_path), (8, 8, 1))


def test_read_image_converts_and_resizes(tmp_path):
  path = str(tmp_path / 'rgb.png')
  Image.fromarray(np.full((10, 14, 3), 200, np.uint8)).save(path)
  gray = predict.read_image(path, (8, 8, 1))
  assert gray.shape == (8, 8, 1) and gray.dtype == np.uint8 and (gray == 200).all()
  assert predict.read_image(path, (32, 32, 3)).shape == (32, 32, 3)


def test_top_k():
  top = predict.top_k(np.log([[0.1, 0.6, 0.3]]), ['a', 'b', 'c'], k=5)
  assert [name for name, _ in top[0]] == ['b', 'c', 'a']
  np.testing.assert_allclose([p for _, p in top[0]], [0.6, 0.3, 0.1])


def test_positional_images_become_flags():
  values = flags.FlagValues()
  predict_cli._define_flags(values)  # pylint: disable=protected-access
  argv = ['predict', '--model', 'dir', 'a.png', '--format=onnx', 'b.png', '--', '-c.png']
  assert predict_cli.images_as_flags(argv, values) == [
      'predict', '--model', 'dir', '--format=onnx', '--image=a.png', '--image=b.png',
      '--image=-c.png']

"""The NAS-Bench-201 space: arch strings, networks, benchmark, BN=0, training from scratch.

Every method's tiny search in this space is in tests/test_plugins.py.
"""

import builtins
import dataclasses
import importlib.util
import os
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from darts_jax import data
from darts_jax.configs import benchmarks
from darts_jax.data import augmentation
from darts_jax.data import datasets
from darts_jax.errors import UserError
from darts_jax.methods.base import Forward
from darts_jax.nn import initializers
from darts_jax.runtime import parallel
from darts_jax.spaces.nb201 import arch as nb201_arch
from darts_jax.spaces.nb201 import benchmark as nb201_benchmark
from darts_jax.spaces.nb201 import networks as nb201_networks
from darts_jax.train import augment
from darts_jax.train import loop
from darts_jax.train import parts as train_parts
from darts_jax.train import search

EXAMPLE = ('|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+'
           '|skip_connect~0|nor_conv_3x3~1|skip_connect~2|')


# ---------------------------------------------------------------------------
# Arch strings.


def test_example_string_parses_and_round_trips():
  arch = nb201_arch.parse_arch(EXAMPLE)
  assert arch.nodes[0] == (('nor_conv_3x3', 0),)
  assert arch.nodes[2] == (('skip_connect', 0), ('nor_conv_3x3', 1), ('skip_connect', 2))
  assert nb201_arch.arch_to_string(arch) == EXAMPLE == str(arch)
  assert nb201_arch.arch_ops(arch) == ['nor_conv_3x3', 'nor_conv_3x3', 'avg_pool_3x3',
                                  'skip_connect', 'nor_conv_3x3', 'skip_connect']


@pytest.mark.parametrize('seed', range(20))
def test_random_archs_round_trip(seed):
  arch = nb201_arch.random_arch(seed)
  assert nb201_arch.parse_arch(nb201_arch.arch_to_string(arch)) == arch
  assert nb201_arch.arch_from_ops(nb201_arch.arch_ops(arch)) == arch


@pytest.mark.parametrize('bad, message', [
    ('', 'expected 3 node groups'),
    ('|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|', 'expected 3 node groups'),
    ('nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|none~1|none~2|',
     'must start and end with'),
    ('|nor_conv_3x3~0|+|nor_conv_3x3~0|+|none~0|none~1|none~2|', 'must have 2 incoming'),
    ('|conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|none~1|none~2|', "unknown op 'conv_3x3'"),
    ('|nor_conv_3x3~1|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|none~1|none~2|',
     'must come from node 0'),
    ('|nor_conv_3x3|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|none~1|none~2|', 'is not "op~source"'),
    ('|nor_conv_3x3~a|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|none~1|none~2|', 'is not "op~source"'),
])
def test_malformed_strings_are_clear(bad, message):
  with pytest.raises(nb201_arch.ArchError, match=message):
    nb201_arch.parse_arch(bad)


def test_non_string_and_missing_file_are_clear(tmp_path):
  with pytest.raises(nb201_arch.ArchError, match='must be a str'):
    nb201_arch.parse_arch(None)
  with pytest.raises(nb201_arch.ArchError, match='neither'):
    nb201_arch.load_arch(str(tmp_path / 'missing'))
  assert not nb201_arch.is_arch_spec('DARTS_V2')


def test_save_and_load_from_a_workdir(tmp_path):
  arch = nb201_arch.parse_arch(EXAMPLE)
  nb201_arch.save_arch(arch, str(tmp_path))
  assert nb201_arch.load_arch(str(tmp_path)) == arch
  assert nb201_arch.is_arch_spec(str(tmp_path))
  assert open(tmp_path / 'genotype.txt').read().strip() == EXAMPLE


def test_derive_is_argmax_per_edge_including_none():
  w = np.zeros((6, 5))
  for e, k in enumerate([0, 3, 4, 1, 3, 1]):
    w[e, k] = 1.0
  assert str(nb201_arch.derive_arch(w)) == ('|none~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+'
                                       '|skip_connect~0|nor_conv_3x3~1|skip_connect~2|')
  with pytest.raises(nb201_arch.ArchError, match='shape'):
    nb201_arch.derive_arch(np.zeros((14, 8)))


# ---------------------------------------------------------------------------
# Networks.


def test_search_cell_with_one_hot_and_all_none_weights():
  """A one-hot search cell runs; an all-'none' cell outputs zeros (nothing reaches node 3)."""
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 4))
  arch = nb201_arch.parse_arch(EXAMPLE)
  w = jax.nn.one_hot(jnp.array([nb201_arch.PRIMITIVES.index(o) for o in nb201_arch.arch_ops(arch)]), 5)
  cell = nb201_networks.SearchCell(nb201_arch.PRIMITIVES, 4)
  v = initializers.host_init(lambda k: cell.init(k, x, w, True), jax.random.key(1), 1)
  none = jax.nn.one_hot(jnp.zeros(6, jnp.int32), 5)
  y, y_none = jax.jit(jax.vmap(lambda w: cell.apply(v, x, w, False)))(jnp.stack([w, none]))
  assert y.shape == x.shape
  assert np.all(np.isfinite(np.asarray(y)))
  np.testing.assert_array_equal(y_none, 0)


def _infer_cell_vars_from_search_cell(search_params, arch):
  """The InferCell variables that compute what the one-hot search cell computes.

  A search cell's nor_conv on the E edges leaving node src is one kernel with E * C
  output channels, chunk e belonging to the e-th of those edges in alpha row order;
  the evaluation cell has affine BN, which at its init (scale 1, bias 0) is the
  search cell's non-affine BN.
  """
  rows_of = dict(nb201_networks._edges_by_source())
  dst_src = nb201_arch.edge_list()
  conv_module = {'nor_conv_1x1': 'NorConv_0', 'nor_conv_3x3': 'NorConv_1'}
  params = {}
  for dst, node in enumerate(arch.nodes, start=1):
    for op, src in node:
      if op not in conv_module:
        continue
      e = rows_of[src].index(dst_src.index((dst, src)))
      kernel = search_params[f'edges_from_{src}'][conv_module[op]]['kernel']
      c = kernel.shape[-1] // len(rows_of[src])
      params[f'edge_{dst}_{src}'] = {
          'kernel': kernel[..., e * c:(e + 1) * c],
          'BatchNorm_0': {'scale': jnp.ones((1, c)), 'bias': jnp.zeros((1, c))}}
  return params


@pytest.mark.parametrize('text', [
    EXAMPLE,
    '|nor_conv_1x1~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|'])
def test_one_hot_search_cell_computes_the_evaluation_cell(text):
  """With one-hot weights the supernet cell is the discrete cell trained from scratch."""
  x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
  arch = nb201_arch.parse_arch(text)
  w = jax.nn.one_hot(jnp.array([nb201_arch.PRIMITIVES.index(o) for o in nb201_arch.arch_ops(arch)]), 5)
  search_cell = nb201_networks.SearchCell(nb201_arch.PRIMITIVES, 3)
  search_vars = search_cell.init(jax.random.key(1), x, w, True)
  infer_cell = nb201_networks.InferCell(arch, 3)
  infer_params = _infer_cell_vars_from_search_cell(search_vars['params'], arch)
  infer_vars = infer_cell.init(jax.random.key(0), x, True)
  assert jax.tree.map(jnp.shape, infer_params) == jax.tree.map(jnp.shape, infer_vars['params'])
  infer_vars = {'params': infer_params, 'batch_stats': infer_vars['batch_stats']}
  for train in (True, False):  # batch statistics, then the (initial) running ones
    y_search, _ = search_cell.apply(search_vars, x, w, train, mutable=['batch_stats'])
    y_infer, _ = infer_cell.apply(infer_vars, x, train, mutable=['batch_stats'])
    np.testing.assert_allclose(y_infer, y_search, rtol=1e-5, atol=1e-5)
  assert float(jnp.std(y_search)) > 0.1


def test_search_network_classifier_shape():
  model = nb201_networks.SearchNetwork(num_classes=10, init_channels=16, cells_per_stage=5)
  x = jnp.zeros((1, 32, 32, 3))
  v = jax.eval_shape(lambda: model.init(jax.random.key(0), x,
                                        {'normal': jnp.ones((6, 5)) / 5}, True))
  assert v['params']['classifier']['kernel'].shape == (64, 10)


ALL_CONV_3X3 = ('|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+'
                '|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|')
ALL_NONE = '|none~0|+|none~0|none~1|+|none~0|none~1|none~2|'


@pytest.mark.parametrize('text, num_classes, published', [
    (ALL_CONV_3X3, 10, 1_531_546), (ALL_CONV_3X3, 100, 1_537_396),
    (ALL_NONE, 10, 73_306), (ALL_NONE, 100, 79_156)])
def test_eval_network_parameter_count_is_nas_bench_201s(text, num_classes, published):
  """The largest and smallest cells' weights, as NAS-Bench-201's API reports them.

  The API's 'params' for CIFAR-10 range over 0.073306-1.531546 MB and for CIFAR-100 over
  0.079156-1.537396 MB (millions of trainable weights, BN affine included): the all-'none'
  and all-nor_conv_3x3 cells at C=16, N=5.
  """
  ev = nb201_networks.EvalNetwork(num_classes=num_classes, init_channels=16, cells_per_stage=5,
                         arch=nb201_arch.parse_arch(text))
  vs = jax.eval_shape(lambda: ev.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=True))
  assert sum(int(np.prod(p.shape)) for p in jax.tree.leaves(vs['params'])) == published


# ---------------------------------------------------------------------------
# Benchmark look-up: the skip path.


def test_benchmark_lookup_is_skipped_without_a_path_or_package(tmp_path, monkeypatch):
  arch = nb201_arch.parse_arch(EXAMPLE)
  assert nb201_benchmark.benchmark_accuracy(arch, '')['benchmark'].startswith(
      'skipped: no config')
  assert 'does not exist' in nb201_benchmark.benchmark_accuracy(
      arch, str(tmp_path / 'missing.pth'))['benchmark']
  path = tmp_path / 'bench.pth'
  path.write_bytes(b'')
  real_import = builtins.__import__

  def no_benchmark(name, *args, **kwargs):
    if name in ('nas_201_api', 'nats_bench'):
      raise ImportError(name)
    return real_import(name, *args, **kwargs)

  monkeypatch.setattr(builtins, '__import__', no_benchmark)
  assert 'neither nas_201_api nor nats_bench' in nb201_benchmark.benchmark_accuracy(
      arch, str(path))['benchmark']


def test_benchmark_settings_are_checked_at_start(tmp_path, monkeypatch):
  """A look-up that cannot run fails before the search, not as a skip at its end."""
  config = benchmarks.search_nb201('darts,tiny')
  info = data.get_info('digits')
  train_parts.check_config(config, info, 1, 1)  # No path: no look-up, nothing to check.
  config.search_space.benchmark_path = str(tmp_path / 'missing.pth')
  with pytest.raises(UserError, match="missing.pth is not a file; give the NAS-Bench-201"):
    train_parts.check_config(config, info, 1, 1)
  path = tmp_path / 'bench.pth'
  path.write_bytes(b'')
  config.search_space.benchmark_path = str(path)
  real_find_spec = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: None if name in (
      'nas_201_api', 'nats_bench') else real_find_spec(name, *a))
  with pytest.raises(UserError, match='pip install nas-bench-201 or pip install nats_bench'):
    train_parts.check_config(config, info, 1, 1)
  monkeypatch.setattr(importlib.util, 'find_spec', real_find_spec)
  # Installed (here: imported already, as a module without a spec).
  monkeypatch.setitem(sys.modules, 'nats_bench', types.ModuleType('nats_bench'))
  train_parts.check_config(config, info, 1, 1)
  config.search_space.benchmark_dataset = 'imagenet'
  with pytest.raises(UserError, match="benchmark_dataset 'imagenet'; use one of"):
    train_parts.check_config(config, info, 1, 1)


class _FakeBenchmarkAPI:
  """Stands in for nas_201_api.NASBench201API (the real file is ~2 GB): the calls and the
  result keys of the published API (query_index_by_arch, get_more_info(..., hp='200'))."""
  calls = []

  def __init__(self, path, verbose=True):
    self.calls.append(('open', path, verbose))

  def query_index_by_arch(self, text):
    self.calls.append(('query', text))
    return 1462 if text == EXAMPLE else -1

  def get_more_info(self, index, dataset, iepoch=None, hp='12', is_random=True):
    self.calls.append(('info', index, dataset, hp, is_random))
    if index < 0:
      raise ValueError('unknown architecture')
    return {'test-accuracy': 93.76, 'test-loss': 0.25}


def test_benchmark_lookup_with_the_api_reports_the_tabulated_accuracy(tmp_path, monkeypatch):
  fake = types.ModuleType('nas_201_api')
  fake.NASBench201API = _FakeBenchmarkAPI
  monkeypatch.setitem(sys.modules, 'nas_201_api', fake)
  path = tmp_path / 'NAS-Bench-201-v1_1-096897.pth'
  path.write_bytes(b'')
  _FakeBenchmarkAPI.calls = []
  result = nb201_benchmark.benchmark_accuracy(nb201_arch.parse_arch(EXAMPLE), str(path))
  assert result == {'benchmark_index': 1462, 'benchmark_dataset': 'cifar10',
                    'benchmark_test_acc': 93.76}
  assert _FakeBenchmarkAPI.calls == [('open', str(path), False), ('query', EXAMPLE),
                                     ('info', 1462, 'cifar10', '200', False)]
  # An API error (here: an architecture missing from the table) is a skip, not a crash.
  other = nb201_arch.random_arch(3)
  assert nb201_arch.arch_to_string(other) != EXAMPLE
  assert nb201_benchmark.benchmark_accuracy(other, str(path))['benchmark'].startswith(
      'skipped: the benchmark API failed')


# ---------------------------------------------------------------------------
# Searches and training from scratch (tiny: digits, C=4, 1 cell per stage).


@pytest.mark.slow
def test_random_ws_search_without_running_stats_derives_a_cell(tmp_path):
  """random_ws ranks its candidates as AutoDL's RANDOM-NAS with BN=0: batch statistics."""
  config = benchmarks.search_nb201('random_ws,tiny')
  config.model.track_running_stats = False
  result = search.search(config, str(tmp_path))
  arch = nb201_arch.parse_arch(result['genotype'])
  assert nb201_arch.load_arch(str(tmp_path)) == arch
  assert result['benchmark'].startswith('skipped')
  alphas = np.load(os.path.join(tmp_path, 'alphas.npz'))
  assert alphas['normal'].shape == (6, 5) and 'reduce' not in alphas
  assert os.path.exists(os.path.join(tmp_path, 'alphas', 'epoch_001.npz'))
  assert os.path.exists(os.path.join(tmp_path, 'plots', 'latest_cell.png'))


def _tiny_search_model(method='darts'):
  config = benchmarks.search_nb201(method + ',tiny')
  info = data.get_info(config.dataset.name)
  parts = train_parts.SearchParts.from_config(config, info.num_classes)
  return config, info, parts, parts.init_state(info.image_shape)


def test_evaluation_without_running_stats_normalizes_each_batch_by_itself():
  """config.model.track_running_stats=False: every BN of the evaluation pass uses the
  statistics of its batch. 12 examples at eval batch 8: the last batch holds 4, padded
  with the same 4 repeated, so its statistics are exactly theirs."""
  config, info, parts, state = _tiny_search_model()
  model, method = parts.model, parts.method
  # Running statistics unlike any batch's, so that the two evaluations differ.
  state = dict(state, batch_stats=jax.tree.map(lambda s: s + 0.5, state['batch_stats']))
  config.eval_batch_size = 8
  rng = np.random.default_rng(0)
  images = rng.integers(0, 17, (12,) + info.image_shape).astype(np.uint8)
  labels = rng.integers(0, info.num_classes, 12).astype(np.int32)
  weights_fn = lambda alphas: method.edge_weights(alphas, Forward.VALIDATION, None, 0)

  @jax.jit
  def loss_sum_alone(rows_images, rows_labels):
    x = augmentation.normalize(rows_images, info.mean, info.std)
    logits, _ = model.apply({'params': state['params'], 'batch_stats': state['batch_stats']},
                            x, weights_fn(state['alphas']), train=True,
                            mutable=['batch_stats'])
    return jnp.sum(optax.softmax_cross_entropy_with_integer_labels(logits, rows_labels))

  expected = (loss_sum_alone(images[:8], labels[:8])
              + loss_sum_alone(images[8:], labels[8:])) / 12
  source, mesh = datasets.ArraySource(images, labels), parallel.make_mesh()
  losses = {}
  for batch_statistics in (True, False):
    eval_step = jax.jit(dataclasses.replace(
        parts, track_running_stats=not batch_statistics).eval_step(info))
    losses[batch_statistics], _ = loop.evaluate(eval_step, state, source, np.arange(12),
                                                config.eval_batch_size, mesh)
  np.testing.assert_allclose(losses[True], expected, rtol=1e-5)
  assert abs(losses[False] - losses[True]) > 1e-3


@pytest.mark.slow
def test_search_step_without_running_stats_leaves_them_alone():
  config, info, parts, state = _tiny_search_model()
  parts = dataclasses.replace(parts, track_running_stats=False)
  rng = np.random.default_rng(1)
  batch = {'image': rng.integers(0, 17, (16,) + info.image_shape).astype(np.uint8),
           'label': rng.integers(0, info.num_classes, 16).astype(np.int32)}
  new_state, _ = jax.jit(parts.search_step(info, steps_per_epoch=2))(state, batch, batch)
  for old, new in zip(jax.tree.leaves(state['batch_stats']),
                      jax.tree.leaves(new_state['batch_stats'])):
    np.testing.assert_array_equal(new, old)
  moved = lambda name: max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(
      jax.tree.leaves(state[name]), jax.tree.leaves(new_state[name])))
  assert moved('params') > 1e-6 and moved('alphas') > 1e-6


@pytest.mark.slow
def test_train_an_arch_string_from_scratch(tmp_path):
  config = benchmarks.augment_nb201('tiny')
  config.genotype = EXAMPLE
  result = augment.train_and_evaluate(config, str(tmp_path))
  assert result['genotype'] == EXAMPLE
  assert 0 <= result['test_acc'] <= 1 and result['params'] > 0

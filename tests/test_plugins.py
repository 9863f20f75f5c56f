"""Methods and spaces as plug-ins: the registries, the contract every method x space keeps,
the hooks, and the two examples in experiments/ that add a method and a space."""

import dataclasses
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from darts_jax import methods
from darts_jax import registry
from darts_jax import spaces
from darts_jax.configs import benchmarks
from darts_jax.errors import UserError
from darts_jax.methods.base import Forward
from darts_jax.train import search

ROOT = os.path.join(os.path.dirname(__file__), '..')

# A tiny search config per registered space, for a method name (a new space adds one here).
TINY_CONFIGS = {
    'darts': lambda method: benchmarks.search_cifar10(method + ',tiny'),
    'nb201': lambda method: benchmarks.search_nb201(method + ',tiny'),
}
PAIRS = [(m, s) for s in spaces.names() for m in methods.names()]


def test_every_registered_space_has_a_tiny_config():
  assert set(spaces.names()) <= set(TINY_CONFIGS), 'add the new space to TINY_CONFIGS'


# ---------------------------------------------------------------------------
# The registries.


def test_unknown_names_are_one_line_listing_the_registered_ones():
  with pytest.raises(UserError, match=r"^unknown config.method.name 'enas'; registered "
                                      r'search methods: darts, gdas, pc_darts, drnas, random_ws'):
    methods.get('enas')
  with pytest.raises(UserError, match=r"^unknown config.search_space.name 'nasbench101'; "
                                      r'registered search spaces: darts, nb201$'):
    spaces.get('nasbench101')


def test_a_plugin_lacking_a_required_piece_is_refused_at_registration():
  @dataclasses.dataclass(frozen=True)
  class NoDerivation(methods.Method):
    name = 'no_derivation'

    def init_alphas(self, key):
      return {}

    def edge_weights(self, alphas, forward, key, epoch):
      return alphas

  with pytest.raises(registry.PluginError, match="search method 'no_derivation'.*does not "
                                                 'define derivation_weights'):
    methods.register(NoDerivation)

  class Half(spaces.SearchSpace):
    name = 'half'

  with pytest.raises(registry.PluginError, match="search space 'half'.*does not define .*"
                                                 'cell_graphs.*primitives'):
    spaces.register(Half)
  assert 'no_derivation' not in methods.names() and 'half' not in spaces.names()


def test_a_name_taken_by_another_plugin_is_refused():
  @dataclasses.dataclass(frozen=True)
  class AnotherDarts(methods.Darts):
    name = 'darts'

  with pytest.raises(registry.PluginError, match="'darts'.*the name is taken by "
                                                 'darts_jax.methods.darts.Darts; pick another'):
    methods.register(AnotherDarts)
  assert methods.get('darts') is methods.Darts


def test_malformed_plugins_and_conflicting_defaults_are_refused():
  with pytest.raises(registry.PluginError, match='must be a subclass of darts_jax.methods.base'):
    methods.register(dict)

  @dataclasses.dataclass(frozen=True)
  class Nameless(methods.Darts):
    pass

  with pytest.raises(registry.PluginError, match='give the class its own `name'):
    methods.register(Nameless)

  @dataclasses.dataclass(frozen=True)
  class HotGdas(methods.Gdas):
    name = 'hot_gdas'
    tau_max: float = 100.0  # config.method.tau_max is GDAS's, with default 10.

  with pytest.raises(registry.PluginError, match='config.method.tau_max defaults to 100.0, '
                                                 "method 'gdas' declares it with 10.0"):
    methods.register(HotGdas)
  assert 'hot_gdas' not in methods.names()


def test_a_plugin_defined_again_replaces_itself():
  """A config file loaded twice defines its plug-in twice: the same definition, no error."""
  def define():
    @dataclasses.dataclass(frozen=True)
    class Again(methods.Darts):
      name = 'defined_again'
    return Again

  first, second = define(), define()
  try:
    methods.register(first)
    methods.register(second)
    assert methods.get('defined_again') is second
  finally:
    methods.unregister('defined_again')


def test_config_method_fields_are_every_methods_hyperparameters():
  from darts_jax import configs  # pylint: disable=g-import-not-at-top
  fields = set(configs.search_config().method) - {'name'}
  assert fields == set(methods.default_hyperparameters())
  assert {'tau_max', 'partial_channels', 'dirichlet_eps', 'num_candidates'} <= fields


# ---------------------------------------------------------------------------
# The contract of every method in every space (no compile: shapes and types).


@pytest.mark.parametrize('method_name,space_name', PAIRS)
def test_method_and_space_contract(method_name, space_name):
  config = TINY_CONFIGS[space_name](method_name)
  space = spaces.from_config(config)
  method = methods.from_config(config, space)
  assert method.name == method_name and space.name == space_name
  alphas = method.init_alphas(jax.random.key(0))
  shape = (space.num_edges, len(space.primitives))
  for forward in Forward:
    key = None if forward == Forward.VALIDATION else jax.random.key(1)
    weights = method.edge_weights(alphas, forward, key, jnp.asarray(0))
    assert set(weights) == set(space.cell_types), forward
    for w in weights.values():
      assert w.shape == shape and bool(jnp.all(jnp.isfinite(w))), forward
  derived = method.derivation_weights(jax.device_get(alphas))
  assert set(derived) == set(space.cell_types)
  assert all(w.dtype == np.float64 and w.shape == shape for w in derived.values())
  arch = space.derive(derived)
  text = space.to_text(arch)
  assert space.to_text(space.parse_searched(text)) == text
  assert space.to_text(space.from_json(space.to_json(arch))) == text
  assert spaces.for_arch(text) is type(space)
  graphs = space.cell_graphs(arch)
  assert {g.alpha_key for g in graphs} <= set(space.cell_types)
  for g in graphs:
    assert all(e.op in space.primitives for e in g.op_edges)
  assert isinstance(method.supernet_options(), spaces.SupernetOptions)
  random_arch = space.random_arch(0)
  assert space.to_text(space.parse_searched(space.to_text(random_arch)))
  path = space.random_path(jax.random.key(2))
  assert all(p.shape == shape for p in path.values())
  assert method.gate_alpha_update(0, 'new', 'old') in ('new', 'old')


# ---------------------------------------------------------------------------
# Every method in every space, end to end: a tiny search that derives a valid architecture.


@pytest.mark.slow
@pytest.mark.parametrize('method_name,space_name', PAIRS)
def test_every_method_searches_every_space(method_name, space_name, tmp_path):
  config = TINY_CONFIGS[space_name](method_name)
  space = spaces.from_config(config)
  result = search.search(config, str(tmp_path))
  assert result['method'] == method_name
  assert 0 <= result['val_acc'] <= 1
  arch = space.parse_searched(result['genotype'])
  found, loaded = spaces.load_arch(str(tmp_path))
  assert found is type(space) and space.to_text(loaded) == result['genotype']
  alphas = np.load(os.path.join(tmp_path, 'alphas.npz'))
  for cell in space.cell_types:
    assert alphas[cell].shape == (space.num_edges, len(space.primitives))
  assert alphas['edges'].tolist() == [list(e) for e in space.edges()]
  for graph in space.cell_graphs(arch):
    assert os.path.exists(os.path.join(tmp_path, 'plots', f'latest_{graph.name}.png'))
  assert os.path.exists(os.path.join(tmp_path, 'report.html'))


# ---------------------------------------------------------------------------
# The hooks the trainer calls.


@dataclasses.dataclass(frozen=True)
class StopsAfterOneEpoch(methods.Darts):
  """Stops the search at the end of its first epoch, and derives from uniform alphas."""
  name = 'test_stops_after_one_epoch'

  def end_of_epoch(self, end):
    return end.epoch >= 1 and 'val_acc' in end.metrics

  def end_of_search(self, end):
    uniform = jax.tree.map(np.zeros_like, end.alphas)
    acc = end.validation_accuracy(uniform, 32)
    return uniform, {'uniform_val_acc': acc}


@pytest.mark.slow
def test_end_of_epoch_stops_and_end_of_search_decides_the_result(tmp_path):
  from darts_jax import configs  # pylint: disable=g-import-not-at-top
  methods.register(StopsAfterOneEpoch)
  try:
    config = configs.search_tiny_config()
    config.method.name = StopsAfterOneEpoch.name
    result = search.search(config, str(tmp_path))
    lines = open(os.path.join(tmp_path, 'metrics.jsonl')).read().splitlines()
    assert len(lines) == 1 and config.train.epochs == 2
    assert 0 <= result['uniform_val_acc'] <= 1
    np.testing.assert_array_equal(np.load(os.path.join(tmp_path, 'alphas.npz'))['normal'], 0)
    # Rerun, the stopped search stays stopped: no second epoch.
    search.search(config, str(tmp_path))
    assert open(os.path.join(tmp_path, 'metrics.jsonl')).read().splitlines() == lines
  finally:
    methods.unregister(StopsAfterOneEpoch.name)


# ---------------------------------------------------------------------------
# The examples: a method and a space added from one file each.


def _run_example(name, workdir):
  proc = subprocess.run([sys.executable, f'experiments/{name}', f'--workdir={workdir}'],
                        cwd=ROOT, capture_output=True, text=True, check=False,
                        env=dict(os.environ, JAX_PLATFORMS='cpu'))
  assert proc.returncode == 0, proc.stderr[-3000:]
  return dict(line.split(': ', 1) for line in proc.stdout.splitlines() if ': ' in line)


@pytest.mark.slow
def test_custom_method_example_searches_with_its_own_method(tmp_path):
  out = _run_example('custom_method.py', tmp_path / 'run')
  assert out['method'] == 'noisy_alpha_darts'
  assert out['genotype'].startswith('Genotype(normal=[')


@pytest.mark.slow
def test_custom_space_example_searches_derives_and_trains_its_cells(tmp_path):
  out = _run_example('custom_space.py', tmp_path / 'run')
  assert out['genotype'].startswith('tricell: ') and out['random_genotype'].startswith('tricell')
  assert 0 <= float(out['test_acc']) <= 1 and 0 <= float(out['random_test_acc']) <= 1
  with open(tmp_path / 'run' / 'search' / 'tricell.txt', encoding='utf-8') as f:
    assert f.read().strip() == out['genotype']
  assert os.path.exists(tmp_path / 'run' / 'report.html')

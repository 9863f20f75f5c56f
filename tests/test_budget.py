"""A search under a budget: the op cost tables against the networks' own counts, the
penalty's gradient, the derivation that respects a target, and its effect on a search."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from darts_jax import configs
from darts_jax import data
from darts_jax import spaces
from darts_jax.configs import benchmarks
from darts_jax.errors import UserError
from darts_jax.nn import params as params_lib
from darts_jax.spaces.darts import cost as darts_cost
from darts_jax.spaces.darts import eval_network
from darts_jax.spaces.darts.genotype import Genotype
from darts_jax.spaces.nb201 import arch as nb201_arch
from darts_jax.spaces.nb201 import networks as nb201_networks
from darts_jax.train import budget as budget_lib
from darts_jax.train import search

INFO = data.get_info('digits')


def darts_config(**budget):
  config = configs.search_digits_config()
  config.model.layers = 3  # Reductions at 1 and 2, as the evaluation network's.
  config.budget.update(budget)
  return config


def _eval_params(config, genotype):
  model = config.model.to_dict()
  model.update(network='cifar', auxiliary=False, drop_path_prob=0.0)
  net = eval_network.build_augment_model(model, genotype, INFO.num_classes)
  return darts_cost.count_params(net, (1,) + INFO.image_shape)


def _genotype(op):
  pairs = tuple((op, src) for node in range(4) for src in (0, 1))
  return Genotype(pairs, (2, 3, 4, 5), pairs, (2, 3, 4, 5))


def test_darts_param_costs_are_the_evaluation_networks_differences():
  """Cells differing only in their ops: the network's weight counts differ exactly as the
  budget's cost tables say (the stem, preprocessing and classifier cancel)."""
  config = darts_config(weight=1.0)
  space = spaces.from_config(config)
  budget = budget_lib.Budget.from_config(config, space, INFO)
  base = _genotype('skip_connect')
  for op in ('sep_conv_3x3', 'dil_conv_5x5', 'max_pool_3x3'):
    other = _genotype(op)
    assert (budget.cost(space, other) - budget.cost(space, base)
            == _eval_params(config, other) - _eval_params(config, base)), op


def test_nb201_param_costs_are_the_evaluation_networks_differences():
  config = benchmarks.search_nb201('darts,tiny')
  config.budget.weight = 1.0
  space = spaces.from_config(config)
  budget = budget_lib.Budget.from_config(config, space, INFO)

  def net_params(arch):
    net = nb201_networks.EvalNetwork(num_classes=10, init_channels=config.model.init_channels,
                                     cells_per_stage=config.model.layers, arch=arch)
    return params_lib.count_weights(jax.eval_shape(
        lambda: net.init(jax.random.key(0), jnp.zeros((1,) + INFO.image_shape)))['params'])

  base = nb201_arch.arch_from_ops(['skip_connect'] * 6)
  for ops in (['nor_conv_3x3'] * 6, ['nor_conv_1x1', 'none', 'avg_pool_3x3'] * 2):
    other = nb201_arch.arch_from_ops(ops)
    assert (budget.cost(space, other) - budget.cost(space, base)
            == net_params(other) - net_params(base)), ops


def test_the_penalty_is_the_expected_cost_and_its_gradient_the_cost_table():
  config = darts_config(weight=2.0)
  space = spaces.from_config(config)
  budget = budget_lib.Budget.from_config(config, space, INFO)
  weights = {c: jnp.full((space.num_edges, 8), 1 / 8) for c in space.cell_types}
  expected = sum(float(t.sum()) / 8 for t in budget.tables.values())
  assert float(budget.penalty(weights)) == pytest.approx(2.0 * expected / budget.scale)
  grads = jax.grad(budget.penalty)(weights)
  for c in space.cell_types:
    np.testing.assert_allclose(grads[c], 2.0 * budget.tables[c] / budget.scale, rtol=1e-6)


def test_the_derivation_respects_a_target():
  config = darts_config(target=1.0)
  space = spaces.from_config(config)
  budget = budget_lib.Budget.from_config(config, space, INFO)
  rng = np.random.default_rng(0)
  # Edge weights that favour the dearest ops (5x5 convolutions).
  weights = {c: np.asarray(jax.nn.softmax(rng.normal(size=(14, 8)) + 3.0 * (
      budget.tables[c] / budget.tables[c].max()), -1), np.float64) for c in space.cell_types}
  plain = space.derive(weights)
  full = budget.cost(space, plain)
  target = full / 3
  capped = dataclasses_replace(budget, target=target)
  arch = capped.derive(space, weights)
  assert budget.cost(space, arch) <= target < full
  assert capped.derive(space, weights) == arch  # Deterministic.
  # Convolutions only ('none' is never derived): every cell costs weights.
  config = darts_config(target=1.0)
  config.search_space.primitives = ('none', 'sep_conv_3x3', 'dil_conv_3x3')
  space = spaces.from_config(config)
  budget = budget_lib.Budget.from_config(config, space, INFO)
  weights = {c: np.full((14, 3), 1 / 3) for c in space.cell_types}
  with pytest.raises(UserError, match='no cell the derivation can reach costs <= '
                                      'config.budget.target 1 params: the cheapest costs'):
    budget.derive(space, weights)


def dataclasses_replace(budget, **changes):
  import dataclasses  # pylint: disable=g-import-not-at-top
  return dataclasses.replace(budget, **changes)


def test_bad_budgets_are_clear():
  config = darts_config(weight=-1.0)
  with pytest.raises(UserError, match='config.budget.weight and target must be >= 0'):
    budget_lib.Budget.from_config(config, spaces.from_config(config), INFO)
  config = darts_config(kind='flops', weight=1.0)
  with pytest.raises(UserError, match="unknown config.budget.kind 'flops'"):
    budget_lib.Budget.from_config(config, spaces.from_config(config), INFO)
  assert budget_lib.Budget.from_config(darts_config(), spaces.from_config(darts_config()),
                                       INFO) is None


@pytest.mark.slow
def test_a_budget_shrinks_the_derived_cell(tmp_path):
  sizes = {}
  for weight in (0.0, 20.0):
    config = configs.search_tiny_config()
    config.budget.weight = weight
    config.budget.target = 0.0 if weight else 1e12  # A target that binds nothing: cost logged.
    config.train.epochs, config.max_steps_per_epoch = 3, 4
    config.arch.lr = 0.05
    config.checkpoint_every_steps = 0
    sizes[weight] = search.search(config, str(tmp_path / str(weight)))['derived_params']
  assert sizes[20.0] < sizes[0.0], sizes

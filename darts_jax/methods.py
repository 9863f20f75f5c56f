"""Search methods: how the architecture parameters become the supernet's edge weights.

The supernet takes `edge_weights` ({'normal', 'reduce'} or, for NAS-Bench-201,
{'normal'}: [num_edges, num_ops]) as an input. A method here decides

  * `train_weights_fn(config, key, epoch)`: the weights of a training forward
    (the alpha step and the weight step of `search.make_search_step`),
  * `eval_weights(config, alphas)`: the weights of the validation forward,
  * `derivation_weights(config, alphas)`: what the discretization ranks,
  * how the architecture parameters are initialised, regularised and updated.

config.method.name:
  darts      softmax(alpha) (Liu et al. 2019).
  gdas       Gumbel-softmax with a hard one-hot forward and a straight-through
             gradient (Dong & Yang 2019); the temperature falls linearly from
             tau_max to tau_min over the epochs; only the sampled op of each edge
             carries a gradient; with config.method.skip_unused_ops, ops that no
             edge sampled are not computed (`MixedEdges.skip_unused_ops`).
  pc_darts   partial channels (1/K of the channels through the mixed op, then a
             channel shuffle) and edge normalization: softmax(alpha) times a
             softmax of per-edge betas over the edges into each node (Xu et al. 2020).
  drnas      Dirichlet edge weights with concentration softplus(alpha) + eps,
             sampled with reparameterized (implicit) gradients, plus an L2
             penalty on the concentrations (Chen et al. 2021).
  random_ws  random search with weight sharing (Li & Talwalkar 2019): every step
             trains one uniformly random architecture on the shared weights;
             at the end N random candidates are ranked on validation data.
             The alphas hold the current (one-hot) architecture.

config.search_space.name is 'darts' (two cell types, 14 edges) or 'nb201'
(`darts_jax.nb201`: one cell type, 6 edges).
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from darts_jax import architect
from darts_jax import genotypes
from darts_jax import nb201
from darts_jax import parallel
from darts_jax import search_ops
from darts_jax import supernet
from darts_jax.errors import UserError

METHODS = ('darts', 'gdas', 'pc_darts', 'drnas', 'random_ws')
SPACES = ('darts', 'nb201')

# Every field of config.method, with the value used when a config lacks it.
DEFAULTS = {
    'name': 'darts',
    'tau_max': 10.0,  # gdas: Gumbel-softmax temperature at the first epoch ...
    'tau_min': 0.1,  # ... falling linearly to this at the last.
    'partial_channels': 4,  # pc_darts: K (1/K of the channels are mixed).
    'arch_start_epoch': 0,  # First epoch with alpha updates (PC-DARTS warms up for 15).
    'dirichlet_eps': 1e-3,  # drnas: concentration = softplus(alpha) + eps.
    'num_candidates': 100,  # random_ws: random architectures ranked at the end ...
    'candidate_eval_examples': 256,  # ... on this many validation examples (<= 0: all).
    # gdas, random_ws: do not compute ops that no edge sampled (nn.cond per state and op).
    # Measured faster on XLA:CPU except GDAS in NAS-Bench-201 (BUILD_NOTES.md).
    'skip_unused_ops': True,
}


def settings(config) -> dict:
  """config.method with DEFAULTS filled in."""
  given = config.get('method', None)
  given = dict(given.to_dict() if isinstance(given, ml_collections.ConfigDict) else given or {})
  return {**DEFAULTS, **given}


def method_name(config) -> str:
  return settings(config)['name']


def space_name(config) -> str:
  return config.search_space.get('name', 'darts')


def check_config(config) -> None:
  s = settings(config)
  if s['name'] not in METHODS:
    raise UserError(f'unknown config.method.name {s["name"]!r}; use one of {METHODS}')
  if space_name(config) not in SPACES:
    raise UserError(f'unknown config.search_space.name {space_name(config)!r}; use one of '
                    f'{SPACES}')
  if space_name(config) == 'nb201':
    nb201.check_benchmark_settings(config.search_space)
  if s['name'] == 'gdas' and not 0 < s['tau_min'] <= s['tau_max']:
    raise UserError(f'config.method needs 0 < tau_min <= tau_max, got {s["tau_min"]}, '
                    f'{s["tau_max"]}')
  if s['name'] == 'pc_darts':
    k = s['partial_channels']
    if k < 1 or config.model.init_channels % k:
      raise UserError(f'config.method.partial_channels ({k}) must be >= 1 and divide '
                      f'config.model.init_channels ({config.model.init_channels})')
  if s['name'] == 'random_ws' and s['num_candidates'] < 1:
    raise UserError('config.method.num_candidates must be >= 1 for random_ws')
  if s['name'] != 'darts' and config.arch.order != 'first' and s['name'] in (
      'gdas', 'drnas', 'random_ws'):
    # Second order differentiates through one sampled architecture; allowed but unusual.
    logging.warning('config.arch.order=%s with method %s: the second-order term uses the '
                    'same sampled edge weights in the virtual step', config.arch.order,
                    s['name'])


# ---------------------------------------------------------------------------
# The space: cells, edges, model.


def cell_types(config) -> tuple[str, ...]:
  return ('normal',) if space_name(config) == 'nb201' else ('normal', 'reduce')


def primitives(config) -> tuple[str, ...]:
  if space_name(config) == 'nb201':
    return nb201.check_primitives(config.search_space.primitives)
  return search_ops.check_primitives(config.search_space.primitives)


def edge_destinations(config) -> np.ndarray:
  """The node each edge (alpha row) flows into."""
  if space_name(config) == 'nb201':
    return np.array([dst for dst, _ in nb201.edge_list()])
  return np.array([dst for dst, _ in genotypes.edge_list(config.search_space.steps)])


def network_options(config) -> dict:
  """Keyword arguments of the supernet for this method."""
  s = settings(config)
  options = {'partial_channels': s['partial_channels'] if s['name'] == 'pc_darts' else 1,
             'skip_unused_ops': bool(s['skip_unused_ops'] and s['name'] in ('gdas', 'random_ws'))}
  if space_name(config) == 'nb201':
    options['unsampled_passthrough'] = s['name'] == 'gdas'
  return options


def build_model(config, num_classes: int):
  """The supernet of config.search_space.name with this method's options."""
  if space_name(config) == 'nb201':
    return nb201.build_search_model(config, num_classes, **network_options(config))
  return supernet.SearchNetwork(
      primitives=primitives(config), num_classes=num_classes,
      init_channels=config.model.init_channels, layers=config.model.layers,
      steps=config.search_space.steps, multiplier=config.search_space.multiplier,
      stem_multiplier=config.model.stem_multiplier,
      depthwise_impl=config.model.depthwise_impl,
      cell_impl=supernet.resolve_cell_impl(config.model.get('cell_impl', 'auto')),
      remat=supernet.resolve_remat(config.model.get('remat', 'auto')),
      strided_input_by_switch=config.arch.get('order') == 'second_exact',
      stem=config.model.get('stem', 'cifar'),
      **network_options(config))


# ---------------------------------------------------------------------------
# Architecture parameters.


def init_arch(config, key, num_ops: int) -> dict:
  """1e-3 * N(0, 1) alphas per cell type (+ betas for pc_darts; a path for random_ws).

  For the DARTS space and method the values equal `search.init_alphas(key, ...)`.
  """
  n = len(edge_destinations(config))
  cells = cell_types(config)
  keys = jax.random.split(key, 2)  # The split search.init_alphas makes.
  alphas = {cell: 1e-3 * jax.random.normal(k, (n, num_ops)) for cell, k in zip(cells, keys)}
  name = method_name(config)
  if name == 'pc_darts':
    kb = jax.random.split(jax.random.fold_in(key, 1), len(cells))
    alphas.update({f'{cell}_beta': 1e-3 * jax.random.normal(k, (n,))
                   for cell, k in zip(cells, kb)})
  if name == 'random_ws':
    alphas = sample_path(config, key, num_ops)
  return alphas


def edge_softmax(beta, destinations: np.ndarray):
  """Softmax of per-edge betas over the edges that flow into the same node."""
  same = jnp.asarray(destinations[:, None] == destinations[None, :], beta.dtype)
  e = jnp.exp(beta - jax.lax.stop_gradient(jnp.max(beta)))
  return e / (same @ e)


def _concentration(alpha, eps):
  return jax.nn.softplus(alpha) + eps


def gdas_tau(config, epoch):
  """Linear from tau_max at epoch 0 to tau_min at the last epoch (GDAS)."""
  s = settings(config)
  frac = jnp.asarray(epoch, jnp.float32) / max(config.train.epochs - 1, 1)
  return s['tau_max'] - (s['tau_max'] - s['tau_min']) * jnp.minimum(frac, 1.0)


def gumbel_hard(key, alpha, tau, every_op: bool = False):
  """One-hot sample of softmax((log_softmax(alpha) + Gumbel) / tau); straight-through.

  The value is exactly one-hot. The gradient flows into the sampled op's soft
  probability only (as in GDAS, whose forward computes only that op), or with
  `every_op` into every op's, as AutoDL's `one_h - probs.detach() + probs` (its
  NAS-Bench-201 cell then adds the unsampled ops' weights themselves:
  `MixedEdges(unsampled_passthrough=True)`).
  """
  g = jax.random.gumbel(key, alpha.shape, alpha.dtype)
  soft = jax.nn.softmax((jax.nn.log_softmax(alpha, axis=-1) + g) / tau, axis=-1)
  hard = jax.nn.one_hot(jnp.argmax(soft, axis=-1), alpha.shape[-1], dtype=alpha.dtype)
  straight_through = soft - jax.lax.stop_gradient(soft)  # Exactly 0.
  return hard + (straight_through if every_op else hard * straight_through)


def _deterministic(config, alphas) -> dict:
  """The method's expected edge weights (DARTS softmax, PC-DARTS with betas, DrNAS mean)."""
  s, name = settings(config), method_name(config)
  out = {}
  for cell in cell_types(config):
    a = alphas[cell]
    if name == 'drnas':
      c = _concentration(a, s['dirichlet_eps'])
      out[cell] = c / jnp.sum(c, axis=-1, keepdims=True)
    elif name == 'random_ws':
      out[cell] = a  # The path itself.
    else:
      out[cell] = jax.nn.softmax(a, axis=-1)
    if name == 'pc_darts':
      out[cell] = out[cell] * edge_softmax(alphas[f'{cell}_beta'],
                                           edge_destinations(config))[:, None]
  return out


def train_weights_fn(config, key, epoch) -> Callable[[dict], dict]:
  """alphas -> edge weights of one training forward (`key` draws the samples)."""
  s, name = settings(config), method_name(config)
  cells = cell_types(config)
  if name in ('darts', 'pc_darts'):
    return lambda alphas: _deterministic(config, alphas)
  keys = dict(zip(cells, jax.random.split(key, len(cells))))
  if name == 'gdas':
    tau = gdas_tau(config, epoch)
    every_op = space_name(config) == 'nb201'  # AutoDL's NAS-Bench-201 GDAS gradient.
    return lambda alphas: {c: gumbel_hard(keys[c], alphas[c], tau, every_op) for c in cells}
  if name == 'drnas':
    return lambda alphas: {
        c: jax.random.dirichlet(keys[c], _concentration(alphas[c], s['dirichlet_eps']))
        for c in cells}
  # random_ws: a uniformly random architecture, independent of the alphas.
  return lambda alphas: sample_path(config, key, alphas[cells[0]].shape[-1])


def eval_weights(config, alphas) -> dict:
  """Edge weights of the validation forward: GDAS evaluates the argmax architecture."""
  if method_name(config) == 'gdas':
    return {c: jax.nn.one_hot(jnp.argmax(alphas[c], -1), alphas[c].shape[-1],
                              dtype=alphas[c].dtype) for c in cell_types(config)}
  return _deterministic(config, alphas)


def eval_weights_fn(config) -> Callable[[dict], dict]:
  return lambda alphas: eval_weights(config, alphas)


def derivation_weights(config, alphas) -> dict:
  """What the discretization ranks, as numpy [num_edges, num_ops] per cell type."""
  name = method_name(config)
  if name == 'gdas':  # GDAS derives from softmax(alpha).
    w = {c: jax.nn.softmax(jnp.asarray(alphas[c]), -1) for c in cell_types(config)}
  else:
    w = _deterministic(config, jax.tree.map(jnp.asarray, dict(alphas)))
  return {c: np.asarray(v, np.float64) for c, v in w.items()}


# ---------------------------------------------------------------------------
# Alpha updates.


def trains_alphas(config) -> bool:
  return method_name(config) != 'random_ws'


def no_alpha_grad(order, loss_fn, params, alphas, train_batch, val_batch, *unused):
  """For methods without architecture parameters: zero grads and a plain val forward."""
  del order, train_batch, unused
  loss, aux = loss_fn(params, alphas, val_batch)
  return architect.AlphaGrad(jax.tree.map(jnp.zeros_like, alphas), loss, aux, (aux,))


def gate_arch_update(config, epoch, new, old):
  """Keeps `old` (alphas, alpha optimizer state, ...) before arch_start_epoch or for
  random_ws."""
  if not trains_alphas(config):
    return old
  start = settings(config)['arch_start_epoch']
  if start <= 0:
    return new
  active = epoch >= start
  return jax.tree.map(lambda n, o: jnp.where(active, n, o), new, old)


# ---------------------------------------------------------------------------
# Random architectures.


def sample_path(config, key, num_ops: int) -> dict:
  """A uniformly random architecture as one-hot edge weights.

  DARTS space: per node 2 distinct inputs, each with a random non-'none' op
  (the other edges are all zero), i.e. a random genotype. NAS-Bench-201: a
  random op (any of the 5) on every edge.
  """
  prims = primitives(config)
  cells = cell_types(config)
  out = {}
  for cell, k in zip(cells, jax.random.split(key, len(cells))):
    if space_name(config) == 'nb201':
      out[cell] = jax.nn.one_hot(jax.random.randint(k, (nb201.num_edges(),), 0, num_ops),
                                 num_ops, dtype=jnp.float32)
      continue
    allowed = jnp.array([i for i, p in enumerate(prims) if p != 'none'])
    rows = []
    for i in range(config.search_space.steps):
      k, k_in, k_op = jax.random.split(k, 3)
      chosen = jax.random.permutation(k_in, i + 2)[:2]
      active = jnp.zeros((i + 2,), jnp.float32).at[chosen].set(1.0)
      ops = allowed[jax.random.randint(k_op, (i + 2,), 0, len(allowed))]
      rows.append(active[:, None] * jax.nn.one_hot(ops, num_ops, dtype=jnp.float32))
    out[cell] = jnp.concatenate(rows)
  return out


def random_architecture(config, seed: int):
  """Plain random sampling (no training): a random genotype or NAS-Bench-201 cell."""
  if space_name(config) == 'nb201':
    return nb201.random_arch(seed, primitives(config))
  from darts_jax import pipeline  # pylint: disable=g-import-not-at-top
  return pipeline.random_genotype(primitives(config), config.search_space.steps,
                                  config.search_space.multiplier, seed)


def finalize(config, state, eval_step, evaluate, source, val_idx, mesh):
  """random_ws: ranks num_candidates random architectures on validation data and puts the
  best one in state['alphas']. Other methods: unchanged. Returns (state, result fields)."""
  if method_name(config) != 'random_ws':
    return state, {}
  s = settings(config)
  n_examples = s['candidate_eval_examples']
  idx = val_idx[:n_examples] if n_examples > 0 else val_idx
  num_ops = len(primitives(config))
  key = jax.random.fold_in(jax.random.key(config.seed), 1_000_003)
  best = None
  for c in range(s['num_candidates']):
    path = parallel.replicate(sample_path(config, jax.random.fold_in(key, c), num_ops), mesh)
    _, acc = evaluate(eval_step, dict(state, alphas=path), source, idx, config, mesh)
    if best is None or acc > best[0]:
      best = (acc, c, path)
  logging.info('random_ws: best of %d candidates is #%d with validation accuracy %.4f on %d '
               'examples', s['num_candidates'], best[1], best[0], len(idx))
  return dict(state, alphas=best[2]), {'num_candidates': s['num_candidates'],
                                       'best_candidate_val_acc': best[0]}


# ---------------------------------------------------------------------------
# Derivation and outputs.


def derive(config, alphas):
  """The discrete architecture: a Genotype (DARTS space) or an nb201.Arch."""
  w = derivation_weights(config, alphas)
  prims = primitives(config)
  if space_name(config) == 'nb201':
    return nb201.derive_arch(w['normal'], prims)
  steps, multiplier = config.search_space.steps, config.search_space.multiplier
  if not any(p != 'none' for p in prims):
    raise genotypes.GenotypeError(f'cannot derive a genotype from primitives {list(prims)}')
  for cell in ('normal', 'reduce'):
    if not np.all(np.isfinite(w[cell])):
      raise genotypes.GenotypeError(f'{cell} edge weights contain NaN or inf; the search '
                                    'diverged')
  cells = [genotypes._derive_cell(w[c], prims, steps)  # pylint: disable=protected-access
           for c in ('normal', 'reduce')]
  concat = tuple(range(2 + steps - multiplier, steps + 2))
  return genotypes.Genotype(cells[0], concat, cells[1], concat)


def arch_text(arch) -> str:
  if isinstance(arch, nb201.Arch):
    return nb201.arch_to_string(arch)
  return genotypes.genotype_to_text(arch)


def parse_arch_text(config, text: str):
  """The architecture `arch_text` wrote: a Genotype or an nb201.Arch, by the config's space."""
  if space_name(config) == 'nb201':
    return nb201.parse_arch(text, primitives(config))
  return genotypes.parse_genotype(text, known_ops=primitives(config))


def arch_json(arch) -> Any:
  if isinstance(arch, nb201.Arch):
    return {'nb201_arch': nb201.arch_to_string(arch)}
  return genotypes.genotype_to_json(arch)


def save_arch(arch, workdir: str) -> None:
  if isinstance(arch, nb201.Arch):
    nb201.save_arch(arch, workdir)
  else:
    genotypes.save_genotype(arch, workdir)


def load_arch(config, workdir: str):
  """The architecture a search wrote to `workdir`."""
  if space_name(config) == 'nb201':
    return nb201.load_arch(workdir)
  return genotypes.load_genotype(workdir)


def write_epoch_outputs(workdir, epoch, alphas, primitives_, arch) -> None:
  """NAS-Bench-201 epochs: alphas/epoch_NNN.npz and a genotypes.jsonl line (no pictures)."""
  from darts_jax import checkpoint  # pylint: disable=g-import-not-at-top
  checkpoint.write_npz(os.path.join(workdir, 'alphas', f'epoch_{epoch:03d}.npz'),
                       primitives=np.array(primitives_), **alphas)
  with open(os.path.join(workdir, 'genotypes.jsonl'), 'a', encoding='utf-8') as f:
    f.write(json.dumps({'epoch': epoch, 'genotype': arch_json(arch),
                        'text': arch_text(arch)}) + '\n')


def benchmark_result(config, arch) -> dict:
  """NAS-Bench-201: the benchmark's accuracy of `arch` if available, else why it was skipped."""
  if not isinstance(arch, nb201.Arch):
    return {}
  return nb201.benchmark_accuracy(arch, config)

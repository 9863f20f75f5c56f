"""A new search space in one file, without editing darts_jax: a 3-node cell with its own ops.

The cell reads the outputs of the two previous cells (states 0 and 1); each of its 3
intermediate nodes (states 2, 3, 4) mixes an edge from every earlier state, and the cell's
output is the mean of the 3 nodes, so every cell keeps the stem's channels (no reduction
cells). Ops: none, skip_connect, avg_pool_3x3 (the DARTS ones) and relu_conv_bn_3x3,
defined and registered here for both the supernet and the network trained from scratch.
A derived cell keeps the 2 strongest non-'none' edges into each node (the DARTS rule),
written `tricell: relu_conv_bn_3x3~0 skip_connect~1 | avg_pool_3x3~2 ... | ...`.

The file registers the space under the name 'tricell'; a config selects it with
config.search_space.name. Run it (a tiny pipeline on the bundled digits: search, then the
derived cell and a random one trained from scratch; a minute or two on a 2-core CPU):
  python experiments/custom_space.py --workdir=/tmp/custom_space
or: python -m darts_jax.main --config=experiments/custom_space.py --workdir=/tmp/custom_space
It prints the derived cell and both test accuracies.
"""

import dataclasses
import os
from typing import Any, Mapping, NamedTuple

from absl import app
from absl import flags
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from darts_jax import configs
from darts_jax import files
from darts_jax import spaces
from darts_jax.errors import UserError
from darts_jax.nn import batch_norm
from darts_jax.nn import conv
from darts_jax.nn import initializers
from darts_jax.spaces import mixed_edges
from darts_jax.spaces.darts import eval_ops

STEPS = 3  # Intermediate nodes.
PRIMITIVES = ('none', 'skip_connect', 'avg_pool_3x3', 'relu_conv_bn_3x3')
PREFIX = 'tricell:'
ARCH_FILE = 'tricell.txt'


# ---------------------------------------------------------------------------
# The new op: ReLU, 3x3 conv, BN, one edge; `per_edge` batches it over a state's edges.


class ReluConvBn(nn.Module):
  channels: int
  stride: int = 1

  @nn.compact
  def __call__(self, x, train: bool):
    kernel = self.param('kernel', initializers.kaiming_normal((0, 1, 2)),
                        (3, 3, x.shape[-1], self.channels))
    y = conv.conv2d(nn.relu(x), kernel, self.stride)
    return batch_norm.BatchNorm(affine=True)(y[None], train)[0]


mixed_edges.register_search_op('relu_conv_bn_3x3', mixed_edges.per_edge(ReluConvBn))
eval_ops.register_augment_op('relu_conv_bn_3x3', lambda c, stride, affine: ReluConvBn(c, stride),
                             overwrite=True)


# ---------------------------------------------------------------------------
# The architecture: per node, two (op, input state) pairs.


class TriCell(NamedTuple):
  pairs: tuple[tuple[str, int], ...]  # 2 per node, nodes in order.


def edges() -> list[tuple[int, int]]:
  """(destination state, source state) per alpha row."""
  return [(node, src) for node in range(2, 2 + STEPS) for src in range(node)]


def to_text(arch: TriCell) -> str:
  nodes = [arch.pairs[2 * i:2 * i + 2] for i in range(STEPS)]
  return PREFIX + ' ' + ' | '.join(' '.join(f'{op}~{src}' for op, src in node) for node in nodes)


def parse(text: str, known_ops=None) -> TriCell:
  known = tuple(known_ops or PRIMITIVES)
  body = str(text).strip()
  if not body.startswith(PREFIX):
    raise UserError(f'{text!r} is not a tricell architecture: it starts with {PREFIX!r}')
  nodes = [n.split() for n in body[len(PREFIX):].split('|')]
  if len(nodes) != STEPS or any(len(n) != 2 for n in nodes):
    raise UserError(f'{text!r}: a tricell has {STEPS} nodes of 2 "op~input" entries, '
                    'separated by "|"')
  pairs = []
  for i, node in enumerate(nodes):
    for entry in node:
      op, _, src = entry.partition('~')
      if op not in known or not src.isdigit() or not 0 <= int(src) < i + 2:
        raise UserError(f'{text!r}: {entry!r} of node {i + 2} must be op~input with an op '
                        f'of {list(known)} and an input in 0..{i + 1}')
      pairs.append((op, int(src)))
  return TriCell(tuple(pairs))


# ---------------------------------------------------------------------------
# Networks.


class SearchCell(nn.Module):
  primitives: tuple[str, ...]
  channels: int
  options: spaces.SupernetOptions

  @nn.compact
  def __call__(self, s0, s1, weights, train: bool):
    states = [s0, s1]
    for node in range(2, 2 + STEPS):
      total = 0.
      for row, (dst, src) in enumerate(edges()):
        if dst == node:
          total = total + mixed_edges.MixedEdges(
              self.primitives, self.channels, 1, 1, options=self.options,
              name=f'edge_{dst}_{src}')(states[src], weights[row:row + 1], train)[0]
      states.append(total)
    return sum(states[2:]) / STEPS


class FixedCell(nn.Module):
  arch: TriCell
  channels: int

  @nn.compact
  def __call__(self, s0, s1, train: bool):
    states = [s0, s1]
    for i in range(STEPS):
      total = 0.
      for k in (2 * i, 2 * i + 1):
        op, src = self.arch.pairs[k]
        y = eval_ops.get_augment_op(op)(self.channels, 1, True)(states[src], train)
        total = total + y
      states.append(total)
    return sum(states[2:]) / STEPS


class Network(nn.Module):
  """Stem (3x3 conv, BN), `layers` cells, global average pool, linear."""
  num_classes: int
  channels: int
  layers: int
  primitives: tuple[str, ...] = PRIMITIVES
  options: spaces.SupernetOptions = spaces.SupernetOptions()
  arch: Any = None  # A TriCell: the fixed network; None: the supernet.

  @nn.compact
  def __call__(self, x, edge_weights=None, train: bool = False, drop_path_prob=None):
    del drop_path_prob  # Not used by this space's networks.
    kernel = self.param('stem', initializers.kaiming_normal((0, 1, 2)),
                        (3, 3, x.shape[-1], self.channels))
    s = batch_norm.BatchNorm(affine=True)(conv.conv2d(x, kernel)[None], train)[0]
    s0 = s1 = s
    for i in range(self.layers):
      if self.arch is None:
        cell = SearchCell(self.primitives, self.channels, self.options, name=f'cell_{i}')
        s0, s1 = s1, cell(s0, s1, edge_weights['cell'], train)
      else:
        s0, s1 = s1, FixedCell(self.arch, self.channels, name=f'cell_{i}')(s0, s1, train)
    logits = nn.Dense(self.num_classes)(jnp.mean(s1, axis=(1, 2)))
    return logits if self.arch is None else (logits, None)


# ---------------------------------------------------------------------------
# The space.


@spaces.register
@dataclasses.dataclass(frozen=True)
class TriCellSpace(spaces.SearchSpace):
  """A stack of identical 3-node cells."""
  name = 'tricell'
  cell_types = ('cell',)
  parameter_free_ops = frozenset({'none', 'skip_connect', 'avg_pool_3x3'})

  primitives: tuple[str, ...] = PRIMITIVES
  init_channels: int = 8
  layers: int = 3

  @classmethod
  def parse(cls, text, known_ops=None):
    return parse(text, known_ops)

  @classmethod
  def to_text(cls, arch):
    return to_text(arch)

  @classmethod
  def to_json(cls, arch):
    return {'tricell': to_text(arch)}

  @classmethod
  def from_json(cls, value):
    return parse(value['tricell'] if isinstance(value, dict) else value)

  @classmethod
  def claims(cls, spec):
    if isinstance(spec, TriCell):
      return True
    text = os.fspath(spec).strip() if isinstance(spec, (str, os.PathLike)) else ''
    if os.path.isdir(text):
      return os.path.isfile(os.path.join(text, ARCH_FILE))
    return text.startswith(PREFIX)

  @classmethod
  def load(cls, spec, known_ops=None):
    if isinstance(spec, TriCell):
      return spec
    text = os.fspath(spec).strip()
    if os.path.isdir(text):
      with open(os.path.join(text, ARCH_FILE), encoding='utf-8') as f:
        text = f.read()
    return parse(text, known_ops)

  @classmethod
  def save(cls, arch, workdir):
    os.makedirs(workdir, exist_ok=True)
    for name in (ARCH_FILE, 'genotype.txt'):
      files.write_atomic(os.path.join(workdir, name),
                         lambda f: f.write((to_text(arch) + '\n').encode()))

  @classmethod
  def cell_graphs(cls, arch):
    rows = {edge: row for row, edge in enumerate(edges())}
    graph_edges = [spaces.GraphEdge(src, 2 + k // 2, op, rows[(2 + k // 2, src)])
                   for k, (op, src) in enumerate(arch.pairs)]
    output = 2 + STEPS
    graph_edges += [spaces.GraphEdge(node, output, None) for node in range(2, output)]
    return (spaces.CellGraph('cell', 'tricell cell', (0, 1), tuple(range(2, output)), output,
                             tuple(graph_edges), labels={output: 'mean'}),)

  @classmethod
  def eval_network(cls, arch, model: Mapping[str, Any], info):
    return Network(info.num_classes, model['init_channels'], model['layers'], arch=arch)

  @classmethod
  def from_config(cls, config):
    primitives = mixed_edges.check_primitives(config.search_space.primitives)
    if all(p == 'none' for p in primitives):
      raise UserError("config.search_space.primitives needs an op other than 'none'")
    return cls(primitives=primitives, init_channels=config.model.init_channels,
               layers=config.model.layers)

  def edges(self):
    return tuple(edges())

  def supernet(self, num_classes, options):
    return Network(num_classes, self.init_channels, self.layers, self.primitives, options)

  def derive(self, weights):
    """Per node the 2 strongest edges by their best non-'none' weight, each its best op."""
    w = np.where(np.array([p != 'none' for p in self.primitives]), weights['cell'], -np.inf)
    pairs = []
    for node in range(2, 2 + STEPS):
      rows = [r for r, (dst, _) in enumerate(edges()) if dst == node]
      for r in sorted(rows, key=lambda r: -w[r].max())[:2]:
        pairs.append((self.primitives[int(np.argmax(w[r]))], edges()[r][1]))
    return TriCell(tuple(pairs))

  def random_arch(self, seed):
    rng = np.random.default_rng(seed)
    ops = [p for p in self.primitives if p != 'none']
    return TriCell(tuple((ops[rng.integers(len(ops))], int(src))
                         for node in range(2, 2 + STEPS)
                         for src in sorted(rng.choice(node, 2, replace=False))))

  def random_path(self, key):
    """The random_arch of a key as one-hot edge weights (unchosen edges all zero)."""
    allowed = jnp.array([i for i, p in enumerate(self.primitives) if p != 'none'])
    rows = []
    for node in range(2, 2 + STEPS):
      key, k_in, k_op = jax.random.split(key, 3)
      active = jnp.zeros((node,)).at[jax.random.permutation(k_in, node)[:2]].set(1.0)
      ops = allowed[jax.random.randint(k_op, (node,), 0, len(allowed))]
      rows.append(active[:, None] * jax.nn.one_hot(ops, len(self.primitives)))
    return {'cell': jnp.concatenate(rows)}


# ---------------------------------------------------------------------------
# A run: the pipeline (search, then the derived and a random cell trained from scratch).


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  del arg
  search = configs.search_tiny_config()
  search.search_space.name = TriCellSpace.name
  search.search_space.primitives = PRIMITIVES
  search.model.init_channels = 8
  search.model.layers = 3
  augment = configs.augment_digits_config()
  augment.model.init_channels = 8
  augment.model.layers = 3
  augment.train.epochs = 1
  augment.max_steps_per_epoch = 3
  augment.checkpoint_every_steps = 0
  return configs.pipeline_config(search, augment)


def main(argv):
  del argv
  from darts_jax.train import pipeline  # pylint: disable=g-import-not-at-top
  result = pipeline.run_pipeline(get_config(), flags.FLAGS.workdir)
  for key in ('genotype', 'test_acc', 'random_genotype', 'random_test_acc'):
    print(f'{key}: {result[key]}')


if __name__ == '__main__':
  flags.DEFINE_string('workdir', '/tmp/darts_jax_custom_space', 'Directory for the run.')
  app.run(main)

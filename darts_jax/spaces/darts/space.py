"""The DARTS search space (Liu et al., ICLR 2019) as a plug-in: two cell types, 14 edges.

A cell has two inputs (states 0 and 1, the outputs of the two previous cells) and
`steps` intermediate nodes (states 2 ..); node i mixes an edge from every earlier state,
and the output concatenates the last `multiplier` nodes. Reduction cells (stride 2 on the
edges from the inputs) sit at 1/3 and 2/3 of the depth. A genotype keeps the two
strongest non-'none' edges per node, each with its best op.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from darts_jax.errors import UserError
from darts_jax.nn import conv
from darts_jax.spaces import mixed_edges
from darts_jax.spaces.base import CellGraph, GraphEdge, SearchSpace, SupernetOptions
from darts_jax.spaces.darts import cost
from darts_jax.spaces.darts import eval_network
from darts_jax.spaces.darts import genotype as genotype_lib
from darts_jax.spaces.darts import genotype_text
from darts_jax.spaces.darts import supernet
from darts_jax.spaces.darts import zoo
from darts_jax.spaces.darts.genotype import Genotype
from darts_jax.spaces.registry import register

CELL_TYPES = ('normal', 'reduce')


def check_image_size(info, num_reductions: int, layers: int) -> None:
  if min(info.image_shape[:2]) < 2 ** num_reductions:
    raise UserError(f'{info.name} images ({info.image_shape[0]}px) are too small for '
                    f'{layers} cells; use fewer layers')


def _state_label(state: int, steps: int) -> str:
  return {0: 'c_{k-2}', 1: 'c_{k-1}', steps + 2: 'c_{k}'}.get(state, str(state - 2))


def _looks_like_genotype_text(text: str) -> bool:
  return 'Genotype' in text or 'normal=' in text.replace(' ', '') or '"normal"' in text


def _file_is_genotype(path: str) -> bool:
  try:
    with open(path, encoding='utf-8') as f:
      return _looks_like_genotype_text(f.read(4096))
  except (OSError, UnicodeDecodeError):
    return False


@register
@dataclasses.dataclass(frozen=True)
class DartsSpace(SearchSpace):
  """The DARTS space of a search config; the architecture is a `Genotype`."""
  name = 'darts'
  cell_types = CELL_TYPES
  parameter_free_ops = frozenset({'none', 'skip_connect', 'max_pool_3x3', 'avg_pool_3x3'})

  primitives: tuple[str, ...] = genotype_lib.PRIMITIVES
  steps: int = 4
  multiplier: int = 4
  init_channels: int = 16
  layers: int = 8
  stem_multiplier: int = 3
  stem: str = 'cifar'
  depthwise_impl: str = 'auto'
  cell_impl: str = 'scan'
  remat: bool = False
  # The exact second-order search reads strided edges' inputs by lax.switch (supernet).
  strided_input_by_switch: bool = False

  # --- The architecture type. ------------------------------------------------

  @classmethod
  def parse(cls, text: str, known_ops=None) -> Genotype:
    return genotype_text.parse_genotype(text, known_ops=known_ops)

  @classmethod
  def to_text(cls, arch: Genotype) -> str:
    return genotype_text.genotype_to_text(arch)

  @classmethod
  def to_json(cls, arch: Genotype) -> Any:
    return genotype_lib.genotype_to_json(arch)

  @classmethod
  def from_json(cls, value: Any) -> Genotype:
    if isinstance(value, str):
      return cls.parse(value)
    return genotype_lib.genotype_from_json(value)

  @classmethod
  def claims(cls, spec: Any) -> bool:
    if isinstance(spec, Genotype):
      return True
    if not isinstance(spec, (str, os.PathLike)):
      return False
    text = os.fspath(spec).strip()
    if os.path.isdir(text):
      return any(_file_is_genotype(os.path.join(text, f))
                 for f in (genotype_lib.GENOTYPE_JSON, genotype_lib.GENOTYPE_TXT))
    if os.path.isfile(text):
      return _file_is_genotype(text)
    return text.lower() in {k.lower() for k in zoo.ZOO} or _looks_like_genotype_text(text)

  @classmethod
  def load(cls, spec: Any, known_ops=None) -> Genotype:
    return zoo.load_genotype(spec, known_ops=known_ops)

  @classmethod
  def save(cls, arch: Genotype, workdir: str) -> None:
    zoo.save_genotype(arch, workdir)

  @classmethod
  def cell_graphs(cls, arch: Genotype) -> tuple[CellGraph, ...]:
    g = genotype_lib.validate_genotype(arch)
    graphs = []
    for cell in CELL_TYPES:
      pairs = g.normal if cell == 'normal' else g.reduce
      concat = g.normal_concat if cell == 'normal' else g.reduce_concat
      steps = len(pairs) // 2
      output = steps + 2
      edges = [GraphEdge(src, k // 2 + 2, op, genotype_lib.num_edges(k // 2) + src)
               for k, (op, src) in enumerate(pairs)]
      edges += [GraphEdge(state, output, None) for state in concat]
      graphs.append(CellGraph(
          cell, f'{cell} cell', (0, 1), tuple(range(2, output)), output, tuple(edges),
          labels={s: _state_label(s, steps) for s in range(output + 1)}))
    return tuple(graphs)

  @classmethod
  def eval_network(cls, arch: Genotype, model: Mapping[str, Any], info):
    network = eval_network.build_augment_model(model, arch, info.num_classes)
    check_image_size(info, len(set(eval_network.reduction_layers(model['layers']))),
                     model['layers'])
    return network

  # --- A configured search. --------------------------------------------------

  @classmethod
  def from_config(cls, config) -> DartsSpace:
    space, model = config.search_space, config.model
    if space.steps < 1:
      raise UserError(f'config.search_space.steps must be positive, got {space.steps}')
    if not 1 <= space.multiplier <= space.steps:
      raise UserError(f'config.search_space.multiplier must be in 1..steps ({space.steps}), '
                      f'got {space.multiplier}')
    primitives = mixed_edges.check_primitives(space.primitives)
    if all(p == 'none' for p in primitives):
      raise UserError("config.search_space.primitives has no op other than 'none'; a "
                      'genotype needs at least one real op')
    cell_impl = model.get('cell_impl', 'auto')
    if cell_impl not in supernet.CELL_IMPLEMENTATIONS:
      raise UserError(f'unknown config.model.cell_impl {cell_impl!r}; '
                      f'use one of {supernet.CELL_IMPLEMENTATIONS}')
    try:
      remat = supernet.resolve_remat(model.get('remat', 'auto'))
    except ValueError as e:
      raise UserError(str(e)) from None
    if model.depthwise_impl not in conv.IMPLEMENTATIONS:
      raise UserError(f'unknown config.model.depthwise_impl {model.depthwise_impl!r}; '
                      f'use one of {conv.IMPLEMENTATIONS}')
    stem = model.get('stem', 'cifar')
    if stem not in supernet.STEMS:
      raise UserError(f'unknown config.model.stem {stem!r}; use one of {supernet.STEMS}')
    return cls(primitives=primitives, steps=space.steps, multiplier=space.multiplier,
               init_channels=model.init_channels, layers=model.layers,
               stem_multiplier=model.stem_multiplier, stem=stem,
               depthwise_impl=model.depthwise_impl,
               cell_impl=supernet.resolve_cell_impl(cell_impl), remat=remat,
               strided_input_by_switch=config.arch.get('order') == 'second_exact')

  def edges(self) -> tuple[tuple[int, int], ...]:
    return tuple((i + 2, j) for i, j in genotype_lib.edge_list(self.steps))

  def check(self, info) -> None:
    check_image_size(info, supernet.stem_strides(self.stem)
                     + len(supernet.reduction_layers(self.layers)), self.layers)

  def supernet(self, num_classes: int, options: SupernetOptions) -> supernet.SearchNetwork:
    return supernet.SearchNetwork(
        primitives=self.primitives, num_classes=num_classes,
        init_channels=self.init_channels, layers=self.layers, steps=self.steps,
        multiplier=self.multiplier, stem_multiplier=self.stem_multiplier,
        depthwise_impl=self.depthwise_impl, options=options, cell_impl=self.cell_impl,
        remat=self.remat, strided_input_by_switch=self.strided_input_by_switch,
        stem=self.stem)

  def op_costs(self, kind: str, image_shape, batch_size: int) -> dict[str, np.ndarray]:
    return cost.op_costs(self, kind, image_shape, batch_size)

  def derive(self, weights: Mapping[str, np.ndarray]) -> Genotype:
    return genotype_lib.derive_from_weights(weights, self.primitives, self.steps,
                                            self.multiplier)

  def random_arch(self, seed: int) -> Genotype:
    """Per node 2 distinct inputs, each with a uniformly random non-'none' op."""
    ops = [p for p in self.primitives if p != 'none']
    rng = np.random.default_rng(seed)

    def cell():
      pairs = []
      for node in range(self.steps):
        for src in sorted(rng.choice(node + 2, size=2, replace=False)):
          pairs.append((ops[rng.integers(len(ops))], int(src)))
      return tuple(pairs)

    concat = tuple(range(2 + self.steps - self.multiplier, self.steps + 2))
    return genotype_lib.validate_genotype(Genotype(cell(), concat, cell(), concat))

  def random_path(self, key: jax.Array) -> dict[str, jax.Array]:
    """A random genotype as one-hot edge weights: per node 2 distinct inputs, each with a
    random non-'none' op; the other edges all zero."""
    num_ops = len(self.primitives)
    allowed = jnp.array([i for i, p in enumerate(self.primitives) if p != 'none'])
    out = {}
    for cell, k in zip(CELL_TYPES, jax.random.split(key, len(CELL_TYPES))):
      rows = []
      for i in range(self.steps):
        k, k_in, k_op = jax.random.split(k, 3)
        chosen = jax.random.permutation(k_in, i + 2)[:2]
        active = jnp.zeros((i + 2,), jnp.float32).at[chosen].set(1.0)
        ops = allowed[jax.random.randint(k_op, (i + 2,), 0, len(allowed))]
        rows.append(active[:, None] * jax.nn.one_hot(ops, num_ops, dtype=jnp.float32))
      out[cell] = jnp.concatenate(rows)
    return out

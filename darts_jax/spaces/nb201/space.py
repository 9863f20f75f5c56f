"""The NAS-Bench-201 search space (Dong & Yang, ICLR 2020) as a plug-in: one cell type, 6 edges.

Node 0 is the cell input, node i (1..3) sums one op on every earlier node, the output
is node 3; 5 ops, so 5^6 = 15,625 cells, each tabulated by the benchmark. The search
network is `networks.SearchNetwork`; the derivation keeps the argmax op of every edge,
'none' included, as the benchmark's own DARTS code does.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from darts_jax.errors import UserError
from darts_jax.spaces import costs
from darts_jax.spaces.base import CellGraph, GraphEdge, SearchSpace, SupernetOptions
from darts_jax.spaces.darts.space import check_image_size
from darts_jax.spaces.nb201 import arch as arch_lib
from darts_jax.spaces.nb201 import benchmark
from darts_jax.spaces.nb201 import networks
from darts_jax.spaces.nb201.arch import Arch
from darts_jax.spaces.registry import register

NUM_REDUCTIONS = 2  # The two ResNet blocks between the three stages.


@register
@dataclasses.dataclass(frozen=True)
class Nb201Space(SearchSpace):
  """NAS-Bench-201 of a search config; the architecture is an `arch.Arch`."""
  name = 'nb201'
  cell_types = ('normal',)
  parameter_free_ops = frozenset({'none', 'skip_connect', 'avg_pool_3x3'})

  primitives: tuple[str, ...] = arch_lib.PRIMITIVES
  init_channels: int = 16
  cells_per_stage: int = 5
  benchmark_path: str = ''
  benchmark_dataset: str = 'cifar10'

  # --- The architecture type. ------------------------------------------------

  @classmethod
  def parse(cls, text: str, known_ops=None) -> Arch:
    return arch_lib.parse_arch(text, known_ops or arch_lib.PRIMITIVES)

  @classmethod
  def to_text(cls, arch: Arch) -> str:
    return arch_lib.arch_to_string(arch)

  @classmethod
  def to_json(cls, arch: Arch) -> Any:
    return {'nb201_arch': arch_lib.arch_to_string(arch)}

  @classmethod
  def from_json(cls, value: Any) -> Arch:
    if isinstance(value, dict) and 'nb201_arch' in value:
      value = value['nb201_arch']
    return cls.parse(value)

  @classmethod
  def claims(cls, spec: Any) -> bool:
    if isinstance(spec, Arch):
      return True
    if isinstance(spec, os.PathLike):
      spec = os.fspath(spec)
    return arch_lib.is_arch_spec(spec)

  @classmethod
  def load(cls, spec: Any, known_ops=None) -> Arch:
    arch = spec if isinstance(spec, Arch) else arch_lib.load_arch(os.fspath(spec))
    if known_ops is not None:
      arch = cls.parse(cls.to_text(arch), known_ops)
    return arch

  @classmethod
  def save(cls, arch: Arch, workdir: str) -> None:
    arch_lib.save_arch(arch, workdir)

  @classmethod
  def cell_graphs(cls, arch: Arch) -> tuple[CellGraph, ...]:
    last = len(arch.nodes)
    rows = {edge: row for row, edge in enumerate(arch_lib.edge_list())}
    edges = tuple(GraphEdge(src, dst, op, rows[(dst, src)])
                  for dst, node in enumerate(arch.nodes, start=1) for op, src in node
                  if op != 'none')
    # A zigzag: no edge passes through a node, so all can be drawn straight.
    positions = {n: (2.6 * n, 0.0 if n in (0, last) else 1.3 * (-1) ** (n + 1))
                 for n in range(last + 1)}
    return (CellGraph('cell', 'NAS-Bench-201 cell', (0,), tuple(range(1, last)), last, edges,
                      positions=positions, cell_type='normal'),)

  @classmethod
  def eval_network(cls, arch: Arch, model: Mapping[str, Any], info):
    check_image_size(info, NUM_REDUCTIONS, model['layers'])
    return networks.EvalNetwork(num_classes=info.num_classes,
                                init_channels=model['init_channels'],
                                cells_per_stage=model['layers'], arch=arch)

  # --- A configured search. --------------------------------------------------

  @classmethod
  def from_config(cls, config) -> Nb201Space:
    space = config.search_space
    stem = config.model.get('stem', 'cifar')
    if stem != 'cifar':
      raise UserError(f"config.model.stem={stem!r} is for the DARTS space; NAS-Bench-201 has "
                      "its own stem: set config.model.stem='cifar'")
    path = space.get('benchmark_path', '')
    dataset = space.get('benchmark_dataset', None) or 'cifar10'
    benchmark.check_benchmark_settings(path, dataset)
    return cls(primitives=networks.check_primitives(space.primitives),
               init_channels=config.model.init_channels,
               cells_per_stage=config.model.layers, benchmark_path=path,
               benchmark_dataset=dataset)

  def edges(self) -> tuple[tuple[int, int], ...]:
    return tuple(arch_lib.edge_list())

  def check(self, info) -> None:
    check_image_size(info, NUM_REDUCTIONS, self.cells_per_stage)

  def supernet(self, num_classes: int, options: SupernetOptions) -> networks.SearchNetwork:
    return networks.SearchNetwork(num_classes=num_classes, init_channels=self.init_channels,
                                  cells_per_stage=self.cells_per_stage,
                                  primitives=self.primitives, options=options)

  def derive(self, weights: Mapping[str, np.ndarray]) -> Arch:
    return arch_lib.derive_arch(weights['normal'], self.primitives)

  def random_arch(self, seed: int) -> Arch:
    return arch_lib.random_arch(seed, self.primitives)

  def random_path(self, key: jax.Array) -> dict[str, jax.Array]:
    """A uniformly random op (any of them, 'none' included) on every edge, one-hot."""
    num_ops = len(self.primitives)
    (k,) = jax.random.split(key, 1)
    return {'normal': jax.nn.one_hot(jax.random.randint(k, (self.num_edges,), 0, num_ops),
                                     num_ops, dtype=jnp.float32)}

  def op_costs(self, kind: str, image_shape, batch_size: int) -> dict[str, np.ndarray]:
    """nor_conv_kxk: k*k*C*C weights (+ its BN's 2C) and k*k*C*C*H*W multiply-adds; the
    other ops none (pooling and additions are not counted, as the DARTS summary); latency
    measured. Summed over the cells of each stage (C, 2C, 4C at H, H/2, H/4)."""
    if kind not in costs.KINDS:
      raise UserError(f'unknown config.budget.kind {kind!r}; use one of {costs.KINDS}')
    table = np.zeros((self.num_edges, len(self.primitives)))
    size, channels = image_shape[0], self.init_channels
    for stage in range(3):
      if stage:
        size, channels = -(-size // 2), channels * 2
      for k, op in enumerate(self.primitives):
        kernel = {'nor_conv_1x1': 1, 'nor_conv_3x3': 3}.get(op)
        if kind == 'latency' and op in ('avg_pool_3x3',) + tuple(
            p for p in self.primitives if p.startswith('nor_conv')):
          make = (lambda: networks.AvgPool(1)) if kernel is None else (
              lambda kernel=kernel, channels=channels: networks.NorConv(channels, kernel, 1, 1,
                                                                        affine=True))
          value = costs.op_latency_ms(f'nb201:{op}', make, (batch_size, size, size, channels))
        elif kernel is None:
          value = 0.0
        elif kind == 'params':
          value = kernel * kernel * channels * channels + 2 * channels
        else:
          value = kernel * kernel * channels * channels * size * size
        table[:, k] += self.cells_per_stage * value
    return {'normal': table}

  def benchmark(self, arch: Arch) -> dict:
    return benchmark.benchmark_accuracy(arch, self.benchmark_path, self.benchmark_dataset)

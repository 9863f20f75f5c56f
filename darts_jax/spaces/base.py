"""The search-space interface: what a space decides, for the trainer, the methods and the pictures.

A space is a class registered with `darts_jax.spaces.register`. Two halves:

* The architecture type (classmethods, no config needed): parse and print its text form,
  JSON, load a `--genotype`-style spec (text, a file, a workdir) and save one, tell whether
  a spec is one of its architectures (`claims`), describe an architecture as cell graphs
  (for the pictures and the report), and build the network that trains one from scratch.
* A configured search (an instance, a frozen dataclass made once by `from_config`): its
  cell types, candidate ops and edges, the supernet, the derivation of an architecture from
  edge weights, random architectures, config checks and an optional benchmark look-up.

The supernet is a flax module `apply(variables, images, edge_weights, train)` where
`edge_weights` maps each cell type to a [num_edges, num_ops] array: the architecture
parameters stay outside the network, and a search method decides how its alphas become
edge weights. What a method needs from the network travels as one `SupernetOptions`.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar, Mapping, Optional

import flax.linen as nn
import jax
import numpy as np

Arch = Any  # A space's architecture value (a Genotype, an NAS-Bench-201 cell, ...).


@dataclasses.dataclass(frozen=True)
class SupernetOptions:
  """What a search method asks of the supernet's mixed edges (one value, passed down whole).

  partial_channels: K > 1 sends 1/K of the channels through the ops (PC-DARTS).
  skip_unused_ops: an op no edge weights is not computed (one-hot weights: GDAS, random paths).
  unsampled_passthrough: one-hot weights whose unsampled entries are added as themselves
    (0 in value, a gradient to every op: AutoDL's NAS-Bench-201 GDAS cell).
  """
  partial_channels: int = 1
  skip_unused_ops: bool = False
  unsampled_passthrough: bool = False


@dataclasses.dataclass(frozen=True)
class GraphEdge:
  """An edge of a cell graph between two states: `op` on it, or a plain connection (the
  cell output's concatenation) when op is None. `row` is the alpha row (of the cell
  type's [num_edges, num_ops] weights) the edge was chosen from, None if not searched."""
  src: int
  dst: int
  op: Optional[str]
  row: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class CellGraph:
  """One cell of an architecture as a graph: what the pictures draw and the report counts.

  States are numbered as the alpha rows' (destination, source) pairs number them;
  `labels` names them in pictures (default: the number). `name` is the picture's file
  name and `cell_type` the key of the alphas the cell was derived from (default: the
  name); `positions` optionally places the states (state -> (x, y)) where a layered
  layout would draw edges through nodes.
  """
  name: str
  title: str
  inputs: tuple[int, ...]
  nodes: tuple[int, ...]
  output: int
  edges: tuple[GraphEdge, ...]
  labels: Mapping[int, str] = dataclasses.field(default_factory=dict)
  positions: Optional[Mapping[int, tuple[float, float]]] = None
  cell_type: Optional[str] = None

  @property
  def alpha_key(self) -> str:
    return self.cell_type or self.name

  def label(self, state: int) -> str:
    return self.labels.get(state, str(state))

  @property
  def op_edges(self) -> tuple[GraphEdge, ...]:
    return tuple(e for e in self.edges if e.op is not None)

  def count(self, ops) -> int:
    """How many of the cell's edges carry one of `ops` (an op name or a collection)."""
    ops = {ops} if isinstance(ops, str) else set(ops)
    return sum(1 for e in self.op_edges if e.op in ops)

  def summary(self) -> str:
    """'2←0 sep_conv_3x3, 2←1 skip_connect, ...' (node ← input state, op)."""
    return ', '.join(f'{e.dst}←{e.src} {e.op}' for e in self.op_edges)


class SearchSpace(abc.ABC):
  """A search space. Subclasses are frozen dataclasses of their configured settings."""

  name: ClassVar[str]
  # The keys of the edge weights and alphas, e.g. ('normal', 'reduce').
  cell_types: ClassVar[tuple[str, ...]]
  # The candidate ops, one column of the edge weights each (a field of every space).
  primitives: tuple[str, ...]
  # Ops without weights, counted in the report (a drift to them is the DARTS collapse).
  parameter_free_ops: ClassVar[frozenset[str]] = frozenset()

  # --- The architecture type. ------------------------------------------------

  @classmethod
  @abc.abstractmethod
  def parse(cls, text: str, known_ops=None) -> Arch:
    """The architecture written as `to_text` writes it; one-line UserError on bad text."""

  @classmethod
  @abc.abstractmethod
  def to_text(cls, arch: Arch) -> str:
    """The architecture's text form (the papers' / the official code's)."""

  @classmethod
  @abc.abstractmethod
  def to_json(cls, arch: Arch) -> Any:
    """A JSON value of the architecture (genotype.json, genotypes.jsonl)."""

  @classmethod
  @abc.abstractmethod
  def from_json(cls, value: Any) -> Arch:
    """The inverse of `to_json`."""

  @classmethod
  @abc.abstractmethod
  def claims(cls, spec: Any) -> bool:
    """Whether `spec` (an architecture, its text, a file or a workdir) is this space's."""

  @classmethod
  @abc.abstractmethod
  def load(cls, spec: Any, known_ops=None) -> Arch:
    """An architecture from its text, a named published one, a file or a search workdir."""

  @classmethod
  @abc.abstractmethod
  def save(cls, arch: Arch, workdir: str) -> None:
    """Writes the architecture's files into a search workdir (atomically)."""

  @classmethod
  @abc.abstractmethod
  def cell_graphs(cls, arch: Arch) -> tuple[CellGraph, ...]:
    """The architecture's cells as graphs, one per cell type."""

  @classmethod
  @abc.abstractmethod
  def eval_network(cls, arch: Arch, model: Mapping[str, Any], info) -> nn.Module:
    """The network that trains `arch` from scratch, from an evaluation config's `model`
    fields and the dataset's `DatasetInfo`; apply(variables, images, train,
    drop_path_prob) -> (logits, auxiliary logits or None)."""

  # --- A configured search. --------------------------------------------------

  @classmethod
  @abc.abstractmethod
  def from_config(cls, config) -> SearchSpace:
    """The space of a search config (config.search_space and config.model), read once."""

  @abc.abstractmethod
  def edges(self) -> tuple[tuple[int, int], ...]:
    """(destination state, source state) per alpha row, the same for every cell type."""

  @abc.abstractmethod
  def supernet(self, num_classes: int, options: SupernetOptions) -> nn.Module:
    """The search network: apply(variables, images, edge_weights, train) -> logits."""

  @abc.abstractmethod
  def derive(self, weights: Mapping[str, np.ndarray]) -> Arch:
    """The discrete architecture from each cell type's [num_edges, num_ops] weights."""

  @abc.abstractmethod
  def random_arch(self, seed: int) -> Arch:
    """A uniformly random architecture of the space (plain random sampling, numpy)."""

  @abc.abstractmethod
  def random_path(self, key: jax.Array) -> dict[str, jax.Array]:
    """A uniformly random architecture as one-hot edge weights (jax; random search with
    weight sharing trains one per step)."""

  def check(self, info) -> None:
    """Raises UserError when the space's settings do not fit together or the data."""
    del info

  def benchmark(self, arch: Arch) -> dict:
    """A tabular benchmark's numbers for `arch`, if the space has one configured."""
    del arch
    return {}

  def op_costs(self, kind: str, image_shape, batch_size: int) -> dict[str, np.ndarray]:
    """Per cell type, [num_edges, num_ops]: the cost of each op on each edge (kind:
    'params', 'macs' or 'latency', see `darts_jax.spaces.costs`), for a search under a
    budget."""
    del kind, image_shape, batch_size
    from darts_jax.errors import UserError  # pylint: disable=g-import-not-at-top
    raise UserError(f'the {self.name} space has no op costs, which config.budget needs; '
                    'give the space an op_costs method or set config.budget.weight and '
                    'target to 0')

  # --- Derived helpers. ------------------------------------------------------

  @property
  def num_edges(self) -> int:
    return len(self.edges())

  def edge_destinations(self) -> np.ndarray:
    return np.array([dst for dst, _ in self.edges()])

  def edge_labels(self) -> list[str]:
    """'dst←src' per alpha row."""
    return [f'{dst}←{src}' for dst, src in self.edges()]

  def parse_searched(self, text: str) -> Arch:
    """An architecture this configured search can have produced (its ops only)."""
    return self.parse(text, known_ops=self.primitives)

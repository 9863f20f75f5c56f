"""A search under a budget, for any method and any space that knows its ops' costs.

config.budget: kind 'params' (weights), 'macs' (multiply-adds per image) or 'latency' (ms
per batch, each op measured once on the device; `darts_jax.spaces.costs`), in a network of
the search network's shape; `weight` > 0 adds weight * (expected cost / the cost with every
edge at its dearest op) to the alpha step's loss, the expected cost taken under the edge
weights of the alpha step's own forward (so sampled and relaxed methods alike get its
gradient); `target` > 0 is a hard limit the derivation respects: when the plain
derivation costs more, it ranks weight - lam * (normalized cost) instead, with the
smallest lam (found by bisection) that meets the target.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
import numpy as np

from darts_jax.errors import UserError
from darts_jax.spaces import costs
from darts_jax.train import settings


@dataclasses.dataclass(frozen=True)
class Budget:
  kind: str
  weight: float
  target: float
  tables: Any  # {cell type: [num_edges, num_ops] cost of each op on each edge}.
  scale: float  # The cost with every edge at its dearest op.

  @classmethod
  def from_config(cls, config, space, info) -> Budget | None:
    """The budget of a search config, or None (weight and target 0: no budget)."""
    fields = config.get('budget', {})
    kind = fields.get('kind', 'params')
    weight, target = float(fields.get('weight', 0.0)), float(fields.get('target', 0.0))
    if weight < 0 or target < 0:
      raise UserError(f'config.budget.weight and target must be >= 0 (0: off), got {weight}, '
                      f'{target}')
    if kind not in costs.KINDS:
      raise UserError(f'unknown config.budget.kind {kind!r}; use one of {costs.KINDS}')
    if weight == 0 and target == 0:
      return None
    batch = settings.batch_size(config.train) or settings.LATENCY_BATCH_FOR_AUTO
    tables = space.op_costs(kind, info.image_shape, batch)
    scale = float(sum(t.max(axis=1).sum() for t in tables.values())) or 1.0
    return cls(kind, weight, target, {c: np.asarray(t, np.float32) for c, t in tables.items()},
               scale)

  def penalty(self, edge_weights: dict):
    """weight * the expected cost under `edge_weights`, over `scale` (a jax scalar)."""
    total = sum(jnp.sum(edge_weights[c] * self.tables[c]) for c in self.tables)
    return self.weight * total / self.scale

  def cost(self, space, arch) -> float:
    """What the derived architecture costs (its edges' ops, summed over its cells)."""
    total = 0.0
    for graph in space.cell_graphs(arch):
      table = self.tables[graph.alpha_key]
      for e in graph.op_edges:
        total += float(table[e.row, list(space.primitives).index(e.op)])
    return total

  def derive(self, space, weights: dict):
    """The space's derivation, made to respect `target` (see the module doc)."""
    arch = space.derive(weights)
    if self.target <= 0 or self.cost(space, arch) <= self.target:
      return arch
    normalized = {c: t / max(float(t.max()), 1e-12) for c, t in self.tables.items()}
    cheaper = lambda lam: space.derive({c: np.asarray(w, np.float64) - lam * normalized[c]
                                        for c, w in weights.items()})
    hi = 1.0
    while self.cost(space, cheaper(hi)) > self.target:
      hi *= 2
      if hi > 1e6:
        raise UserError(
            f'no cell the derivation can reach costs <= config.budget.target '
            f'{self.target:g} {self.kind}: the cheapest costs '
            f'{self.cost(space, cheaper(hi)):g}; raise the target')
    lo = 0.0
    for _ in range(40):
      mid = (lo + hi) / 2
      if self.cost(space, cheaper(mid)) <= self.target:
        hi = mid
      else:
        lo = mid
    return cheaper(hi)

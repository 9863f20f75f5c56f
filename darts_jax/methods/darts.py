"""DARTS (Liu et al., ICLR 2019): softmax(alpha) on every edge, the method the others vary.

Alphas 1e-3 * N(0, 1), one [num_edges, num_ops] array per cell type, as the reference
code's `_initialize_alphas` (quark0/darts cnn/model_search.py); every forward weights its
edges by the softmax over ops; the discretization ranks that softmax.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import numpy as np

from darts_jax.methods.base import Forward, Method
from darts_jax.methods.registry import register


@register
@dataclasses.dataclass(frozen=True)
class Darts(Method):
  """softmax(alpha) edge weights; derived from the same softmax."""
  name = 'darts'

  def init_alphas(self, key: jax.Array) -> dict:
    cells = self.space.cell_types
    shape = (self.space.num_edges, len(self.space.primitives))
    keys = jax.random.split(key, max(2, len(cells)))  # Two: the reference's two cell types.
    return {cell: 1e-3 * jax.random.normal(k, shape) for cell, k in zip(cells, keys)}

  def expected_weights(self, alphas: dict) -> dict:
    """The deterministic edge weights: softmax over ops per edge."""
    return {cell: jax.nn.softmax(alphas[cell], axis=-1) for cell in self.space.cell_types}

  def edge_weights(self, alphas: dict, forward: Forward, key: Optional[jax.Array],
                   epoch) -> dict:
    del forward, key, epoch
    return self.expected_weights(alphas)

  def derivation_weights(self, alphas: dict) -> dict[str, np.ndarray]:
    w = self.expected_weights(jax.tree.map(jax.numpy.asarray, dict(alphas)))
    return {cell: np.asarray(v, np.float64) for cell, v in w.items()}

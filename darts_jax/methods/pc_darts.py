"""PC-DARTS (Xu et al., ICLR 2020): partial channel connections and edge normalization.

Only 1/K of an edge's channels go through the mixed op (the rest bypass it, then the
channels are shuffled: `SupernetOptions.partial_channels`); each edge's op weights are
softmax(alpha) times a softmax of per-edge betas over the edges into the same node, which
the derivation ranks too (yuhuixu1993/PC-DARTS model_search.py; K = 4 on CIFAR-10, 2 on
ImageNet, model_search_imagenet.py).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from darts_jax.errors import UserError
from darts_jax.methods.darts import Darts
from darts_jax.methods.registry import register
from darts_jax.spaces.base import SupernetOptions


def edge_softmax(beta, destinations: np.ndarray):
  """Softmax of per-edge betas over the edges that flow into the same node."""
  same = jnp.asarray(destinations[:, None] == destinations[None, :], beta.dtype)
  e = jnp.exp(beta - jax.lax.stop_gradient(jnp.max(beta)))
  return e / (same @ e)


@register
@dataclasses.dataclass(frozen=True)
class PcDarts(Darts):
  """DARTS with 1/K of the channels mixed and betas normalizing the edges into a node."""
  name = 'pc_darts'

  partial_channels: int = 4  # K: 1/K of the channels are mixed.

  def check(self) -> None:
    k = self.partial_channels
    channels = getattr(self.space, 'init_channels', k)
    if k < 1 or channels % k:
      raise UserError(f'config.method.partial_channels ({k}) must be >= 1 and divide '
                      f'config.model.init_channels ({channels})')

  def init_alphas(self, key: jax.Array) -> dict:
    alphas = super().init_alphas(key)
    cells = self.space.cell_types
    betas = jax.random.split(jax.random.fold_in(key, 1), len(cells))
    alphas.update({f'{cell}_beta': 1e-3 * jax.random.normal(k, (self.space.num_edges,))
                   for cell, k in zip(cells, betas)})
    return alphas

  def expected_weights(self, alphas: dict) -> dict:
    destinations = self.space.edge_destinations()
    return {cell: jax.nn.softmax(alphas[cell], axis=-1)
            * edge_softmax(alphas[f'{cell}_beta'], destinations)[:, None]
            for cell in self.space.cell_types}

  def supernet_options(self) -> SupernetOptions:
    return SupernetOptions(partial_channels=self.partial_channels)

"""DrNAS (Chen et al., ICLR 2021): edge weights sampled from a Dirichlet per edge.

The concentration is softplus(alpha) + `dirichlet_eps`; every training forward draws the
weights with reparameterized (implicit) gradients; validation and the derivation use the
Dirichlet mean. DrNAS's L2 regularizer on the alphas (reg_type 'l2', reg_scale 1e-3 in
xiangning-chen/DrNAS DARTS-space/train_search.py) is the alpha optimizer's weight decay.
Deviations (BUILD_NOTES.md): softplus + eps instead of the official elu + 1, the mean
ranked instead of softmax(alpha), no progressive stages.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import jax

from darts_jax.methods.base import Forward
from darts_jax.methods.darts import Darts
from darts_jax.methods.registry import register


@register
@dataclasses.dataclass(frozen=True)
class DrNas(Darts):
  """Dirichlet edge weights, reparameterized samples in training, their mean otherwise."""
  name = 'drnas'
  deterministic_forward = False

  dirichlet_eps: float = 1e-3  # concentration = softplus(alpha) + eps.

  def concentration(self, alpha):
    return jax.nn.softplus(alpha) + self.dirichlet_eps

  def expected_weights(self, alphas: dict) -> dict:
    out = {}
    for cell in self.space.cell_types:
      c = self.concentration(alphas[cell])
      out[cell] = c / jax.numpy.sum(c, axis=-1, keepdims=True)
    return out

  def edge_weights(self, alphas: dict, forward: Forward, key: Optional[jax.Array],
                   epoch) -> dict:
    del epoch
    if forward == Forward.VALIDATION:
      return self.expected_weights(alphas)
    cells = self.space.cell_types
    keys = dict(zip(cells, jax.random.split(key, len(cells))))
    return {c: jax.random.dirichlet(keys[c], self.concentration(alphas[c])) for c in cells}

"""GDAS (Dong & Yang, CVPR 2019): one op per edge, sampled by a hard Gumbel-softmax.

Each forward samples a one-hot op per edge from softmax((log_softmax(alpha) + Gumbel) /
tau) and passes the gradient straight through to the sampled op's soft probability;
tau falls linearly from `tau_max` to `tau_min` over the epochs (AutoDL-Projects
exps/algos/GDAS.py, 10 -> 0.1). Validation evaluates the argmax architecture; the
derivation ranks softmax(alpha). With `skip_unused_ops` the supernet computes no op that
no edge sampled. `straight_through='every_op'` is AutoDL's NAS-Bench-201 cell
(`one_h - probs.detach() + probs`: the same one-hot value, a gradient to every op's
probability), set by the NAS-Bench-201 configs.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from darts_jax.errors import UserError
from darts_jax.methods.base import Forward
from darts_jax.methods.darts import Darts
from darts_jax.methods.registry import register
from darts_jax.spaces.base import SupernetOptions

STRAIGHT_THROUGH = ('sampled', 'every_op')


def gumbel_hard(key, alpha, tau, every_op: bool = False):
  """One-hot sample of softmax((log_softmax(alpha) + Gumbel) / tau); straight-through.

  The value is exactly one-hot. The gradient flows into the sampled op's soft
  probability only (as in GDAS, whose forward computes only that op), or with
  `every_op` into every op's, as AutoDL's `one_h - probs.detach() + probs` (its
  NAS-Bench-201 cell then adds the unsampled ops' weights themselves:
  `SupernetOptions(unsampled_passthrough=True)`).
  """
  g = jax.random.gumbel(key, alpha.shape, alpha.dtype)
  soft = jax.nn.softmax((jax.nn.log_softmax(alpha, axis=-1) + g) / tau, axis=-1)
  hard = jax.nn.one_hot(jnp.argmax(soft, axis=-1), alpha.shape[-1], dtype=alpha.dtype)
  straight_through = soft - jax.lax.stop_gradient(soft)  # Exactly 0.
  return hard + (straight_through if every_op else hard * straight_through)


def linear_tau(epoch, epochs: int, tau_max: float, tau_min: float):
  """Linear from tau_max at epoch 0 to tau_min at the last epoch."""
  frac = jnp.asarray(epoch, jnp.float32) / max(epochs - 1, 1)
  return tau_max - (tau_max - tau_min) * jnp.minimum(frac, 1.0)


@register
@dataclasses.dataclass(frozen=True)
class Gdas(Darts):
  """Hard Gumbel-softmax samples, straight-through gradients, an annealed temperature."""
  name = 'gdas'
  deterministic_forward = False

  tau_max: float = 10.0  # Gumbel-softmax temperature at the first epoch ...
  tau_min: float = 0.1  # ... falling linearly to this at the last.
  # Do not compute ops that no edge sampled (nn.cond per state and op); measured faster on
  # XLA:CPU except GDAS in NAS-Bench-201 (BUILD_NOTES.md).
  skip_unused_ops: bool = True
  straight_through: str = 'sampled'  # Or 'every_op' (AutoDL's NAS-Bench-201 cell).

  def check(self) -> None:
    if not 0 < self.tau_min <= self.tau_max:
      raise UserError(f'config.method needs 0 < tau_min <= tau_max, got {self.tau_min}, '
                      f'{self.tau_max}')
    if self.straight_through not in STRAIGHT_THROUGH:
      raise UserError(f'unknown config.method.straight_through {self.straight_through!r}; '
                      f'use one of {STRAIGHT_THROUGH}')

  def tau(self, epoch):
    return linear_tau(epoch, self.epochs, self.tau_max, self.tau_min)

  def edge_weights(self, alphas: dict, forward: Forward, key: Optional[jax.Array],
                   epoch) -> dict:
    cells = self.space.cell_types
    if forward == Forward.VALIDATION:  # The argmax architecture.
      return {c: jax.nn.one_hot(jnp.argmax(alphas[c], -1), alphas[c].shape[-1],
                                dtype=alphas[c].dtype) for c in cells}
    keys = dict(zip(cells, jax.random.split(key, len(cells))))
    tau, every_op = self.tau(epoch), self.straight_through == 'every_op'
    return {c: gumbel_hard(keys[c], alphas[c], tau, every_op) for c in cells}

  def derivation_weights(self, alphas: dict) -> dict[str, np.ndarray]:
    return {c: np.asarray(jax.nn.softmax(jnp.asarray(alphas[c]), -1), np.float64)
            for c in self.space.cell_types}

  def supernet_options(self) -> SupernetOptions:
    return SupernetOptions(skip_unused_ops=bool(self.skip_unused_ops),
                           unsampled_passthrough=self.straight_through == 'every_op')

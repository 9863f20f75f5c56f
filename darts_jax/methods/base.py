"""The search-method interface: what a method decides, as hooks the trainer calls.

A method is a frozen dataclass (jit closes over it) deriving from `Method`, registered
with `darts_jax.methods.register`; its fields are its hyperparameters, read from the
config fields of the same name under `config.method` (their defaults are the config's).
It decides how the architecture parameters are initialised, how they become the
supernet's edge weights in each forward (`Forward`: the alpha step's, the weight step's,
validation's), what the discretization ranks, extra loss terms on the alphas, whether
and when the alphas are updated, what the supernet must do for it (`SupernetOptions`),
and what happens at the end of an epoch and of the search.

Three hooks are required (`init_alphas`, `edge_weights`, `derivation_weights`); the
rest default to DARTS's behaviour. `darts_jax.methods.darts.Darts` implements all of
them: most variants derive from it and override one or two (NASLib's and NNI's way).
"""

from __future__ import annotations

import abc
import dataclasses
import enum
from typing import Any, Callable, ClassVar, Optional

import jax
import jax.numpy as jnp
import numpy as np

from darts_jax.spaces.base import SearchSpace, SupernetOptions

# The fields every method has that do not come from config.method.
_CONTEXT_FIELDS = ('space', 'epochs')


class Forward(enum.Enum):
  """Which forward a set of edge weights is for."""
  ALPHA_STEP = 'alpha_step'  # The alpha gradient's forwards (and, second order, its train ones).
  WEIGHT_STEP = 'weight_step'  # The weight step's forward on a train batch.
  VALIDATION = 'validation'  # Evaluation: per-epoch validation, candidates' ranking, init.


@dataclasses.dataclass(frozen=True)
class EpochEnd:
  """What the end-of-epoch hook sees (host values)."""
  epoch: int  # Epochs completed, 1-based.
  alphas: dict  # numpy arrays.
  metrics: dict  # The epoch's line of metrics.jsonl so far.


@dataclasses.dataclass(frozen=True)
class SearchEnd:
  """What the end-of-search hook sees.

  `validation_accuracy(alphas, num_examples)`: the supernet's accuracy on the first
  `num_examples` search-validation examples (all when <= 0) with these alphas in place
  of the search's (through the method's VALIDATION edge weights).
  """
  alphas: dict
  seed: int
  validation_accuracy: Callable[[dict, int], float]


@dataclasses.dataclass(frozen=True)
class Method(abc.ABC):
  """A search method over a configured space; `epochs` is the search's length."""

  name: ClassVar[str]
  # False: the alphas are never updated (no alpha gradient is computed).
  trains_alphas: ClassVar[bool] = True
  # True: the alpha step's and the weight step's edge weights are the same function of
  # the alphas (no sampling), so a second-order step may share their train gradient.
  deterministic_forward: ClassVar[bool] = True

  space: SearchSpace
  epochs: int = 50
  arch_start_epoch: int = 0  # First epoch with alpha updates (PC-DARTS warms up for 15).

  # --- Made from the config. -------------------------------------------------

  @classmethod
  def hyperparameters(cls) -> dict[str, Any]:
    """config.method's fields of this method, with their defaults."""
    return {f.name: f.default for f in dataclasses.fields(cls)
            if f.name not in _CONTEXT_FIELDS and f.init}

  @classmethod
  def from_config(cls, config, space: SearchSpace) -> Method:
    """The method of a search config: config.method's fields, the search's epochs."""
    given = config.get('method', {})
    values = {k: given[k] for k in cls.hyperparameters() if k in given}
    method = cls(space=space, epochs=config.train.epochs, **values)
    method.check()
    return method

  def check(self) -> None:
    """Raises UserError when the hyperparameters do not fit together or the space."""

  # --- Architecture parameters. ----------------------------------------------

  @abc.abstractmethod
  def init_alphas(self, key: jax.Array) -> dict:
    """The architecture parameters: a pytree (e.g. one [num_edges, num_ops] array per cell
    type) that the alpha optimizer updates."""

  @abc.abstractmethod
  def edge_weights(self, alphas: dict, forward: Forward, key: Optional[jax.Array],
                   epoch) -> dict:
    """The supernet's edge weights ({cell type: [num_edges, num_ops]}) for one forward.

    `key` draws this forward's samples (None for VALIDATION); `epoch` may be traced.
    """

  @abc.abstractmethod
  def derivation_weights(self, alphas: dict) -> dict[str, np.ndarray]:
    """What the space's discretization ranks: {cell type: float64 [num_edges, num_ops]}."""

  def regularizer(self, alphas: dict, epoch) -> Optional[jax.Array]:
    """An extra term of the alpha step's loss (its gradient is added to the alpha
    gradient), or None for none."""
    del alphas, epoch
    return None

  def gate_alpha_update(self, epoch, new, old):
    """`new` (alphas, their optimizer state, batch statistics) where the alphas are
    updated at `epoch`, else `old`; DARTS: from `arch_start_epoch` on."""
    if not self.trains_alphas:
      return old
    if self.arch_start_epoch <= 0:
      return new
    active = epoch >= self.arch_start_epoch
    return jax.tree.map(lambda n, o: jnp.where(active, n, o), new, old)

  def supernet_options(self) -> SupernetOptions:
    return SupernetOptions()

  # --- Hooks. ----------------------------------------------------------------

  def end_of_epoch(self, end: EpochEnd) -> bool:
    """Called after each epoch's outputs are written; True stops the search there."""
    del end
    return False

  def end_of_search(self, end: SearchEnd) -> tuple[dict, dict]:
    """(the alphas to derive from, extra fields for result.json)."""
    return end.alphas, {}

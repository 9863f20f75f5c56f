"""Random search with weight sharing (Li & Talwalkar, UAI 2019).

Every step trains one uniformly random architecture of the space on the shared weights
(its one-hot edge weights, independent of any parameter); at the end `num_candidates`
random architectures are ranked by validation accuracy on the first
`candidate_eval_examples` search-validation examples, and the best is the result. The
"alphas" hold the current architecture as one-hot weights; they are never trained.
liamcli/randomNAS_release: 1000 candidates in the DARTS space (it re-scores the top 10 on
the whole validation split in rounds; here they are ranked once, BUILD_NOTES.md).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from absl import logging
import jax
import numpy as np

from darts_jax.errors import UserError
from darts_jax.methods.base import Forward, Method, SearchEnd
from darts_jax.methods.registry import register
from darts_jax.spaces.base import SupernetOptions

# Folded into the seed's key for the candidates (apart from every step's keys).
_CANDIDATES_KEY = 1_000_003


@register
@dataclasses.dataclass(frozen=True)
class RandomWs(Method):
  """Random architectures on shared weights; the best of N random candidates at the end."""
  name = 'random_ws'
  trains_alphas = False
  deterministic_forward = False

  num_candidates: int = 100  # Random architectures ranked at the end ...
  candidate_eval_examples: int = 256  # ... on this many validation examples (<= 0: all).
  skip_unused_ops: bool = True  # Do not compute ops no edge of a state uses (one-hot).

  def check(self) -> None:
    if self.num_candidates < 1:
      raise UserError('config.method.num_candidates must be >= 1 for random_ws')

  def init_alphas(self, key: jax.Array) -> dict:
    return self.space.random_path(key)

  def edge_weights(self, alphas: dict, forward: Forward, key: Optional[jax.Array],
                   epoch) -> dict:
    del epoch
    if forward == Forward.VALIDATION:
      return dict(alphas)  # The current architecture itself.
    return self.space.random_path(key)

  def derivation_weights(self, alphas: dict) -> dict[str, np.ndarray]:
    return {c: np.asarray(alphas[c], np.float64) for c in self.space.cell_types}

  def supernet_options(self) -> SupernetOptions:
    return SupernetOptions(skip_unused_ops=bool(self.skip_unused_ops))

  def end_of_search(self, end: SearchEnd) -> tuple[dict, dict]:
    key = jax.random.fold_in(jax.random.key(end.seed), _CANDIDATES_KEY)
    best = None
    for c in range(self.num_candidates):
      path = self.space.random_path(jax.random.fold_in(key, c))
      acc = end.validation_accuracy(path, self.candidate_eval_examples)
      if best is None or acc > best[0]:
        best = (acc, c, path)
    logging.info('random_ws: best of %d candidates is #%d with validation accuracy %.4f',
                 self.num_candidates, best[1], best[0])
    return best[2], {'num_candidates': self.num_candidates, 'best_candidate_val_acc': best[0]}

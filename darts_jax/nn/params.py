"""Counting a network's weights as the papers count them."""

import math
from typing import Any

import jax

AUXILIARY_PREFIX = 'auxiliary'


def count_weights(params: Any) -> int:
  """Weights in a params tree, auxiliary head excluded (as the papers and the
  reference code's count_parameters_in_MB count)."""
  total = 0
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    names = [getattr(k, 'key', str(k)) for k in path]
    if not any(str(n).startswith(AUXILIARY_PREFIX) for n in names):
      total += math.prod(leaf.shape)
  return total

"""The registry of search spaces (`register`, `get`), and finding an architecture's space."""

from __future__ import annotations

from typing import Any

from darts_jax import registry
from darts_jax.spaces.base import SearchSpace

SPACES = registry.Registry('search space', SearchSpace, 'config.search_space.name',
                           required=('cell_types', 'primitives'))
register = SPACES.register
get = SPACES.get
names = SPACES.names
unregister = SPACES.unregister

# The space an architecture spec no space claims is read as (its reader says what is wrong),
# and the space of a config without config.search_space.name.
DEFAULT = 'darts'


def from_config(config) -> SearchSpace:
  """The configured space of a search config (config.search_space.name)."""
  return get(config.search_space.get('name', DEFAULT)).from_config(config)


def for_arch(spec: Any, name: str = '') -> type[SearchSpace]:
  """The space of an architecture spec: `name`'s when given, else the first space that
  claims the spec (text, a file, a workdir, an architecture value), else the default."""
  if name:
    return get(name)
  for space in SPACES.plugins():
    if space.claims(spec):
      return space
  return get(DEFAULT)


def load_arch(spec: Any, name: str = '') -> tuple[type[SearchSpace], Any]:
  """(space, architecture) of a spec such as config.genotype."""
  space = for_arch(spec, name)
  return space, space.load(spec)

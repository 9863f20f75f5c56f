"""The registry of search methods (`register`, `get`)."""

from darts_jax import registry
from darts_jax.methods.base import Method

METHODS = registry.Registry('search method', Method, 'config.method.name')
get = METHODS.get
names = METHODS.names
unregister = METHODS.unregister


def register(method: type[Method]) -> type[Method]:
  """Registers a method class (a decorator); refused with one line if it is malformed, its
  name is taken, or a config.method field it declares has another default elsewhere."""
  METHODS.register(method)
  try:
    default_hyperparameters()
  except registry.PluginError:
    METHODS.unregister(method.name)
    raise
  return method


def from_config(config, space) -> Method:
  """The configured method of a search config (config.method.name) over `space`."""
  return get(config.method.get('name', 'darts')).from_config(config, space)


def default_hyperparameters() -> dict:
  """Every registered method's config.method fields with their defaults (the config
  schema: a field another method declares with another default is refused)."""
  fields, owner = {}, {}
  for method in METHODS.plugins():
    for name, value in method.hyperparameters().items():
      if name in fields and fields[name] != value:
        raise registry.PluginError(
            f'cannot register search method {method.name!r}: its config.method.{name} '
            f'defaults to {value!r}, method {owner[name]!r} declares it with {fields[name]!r}; '
            'rename the field or use the same default')
      fields.setdefault(name, value)
      owner.setdefault(name, method.name)
  return fields

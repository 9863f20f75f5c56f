"""Registries of plug-ins (search methods, search spaces): register by name, look up by name.

A plug-in is a class with a `name` class attribute. `register` refuses, with one line that
says what is wrong, a plug-in that is not of the registry's base class, has no name, lacks a
required piece (an abstract method left unimplemented) or takes a name another plug-in
has (a class defined again, e.g. its file loaded twice, replaces its older self);
`get` of an unknown name is one `error:` line that lists the known names and the config
field that chose it.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Generic, Sequence, TypeVar

from darts_jax.errors import UserError

Plugin = TypeVar('Plugin', bound=type)


class PluginError(UserError):
  """A plug-in refused at registration."""


class Registry(Generic[Plugin]):
  """Name -> plug-in class, in registration order."""

  def __init__(self, kind: str, base: type, config_field: str, required: Sequence[str] = ()):
    self.kind = kind  # 'search method', 'search space'.
    self.base = base
    self.config_field = config_field  # Where a config names one, e.g. 'config.method.name'.
    self.required = tuple(required)  # Attributes or dataclass fields every plug-in defines.
    self._plugins: dict[str, Plugin] = {}

  def register(self, plugin: Plugin) -> Plugin:
    """Adds `plugin` (usable as a class decorator); refuses a malformed or duplicate one."""
    what = getattr(plugin, '__name__', repr(plugin))
    if not (inspect.isclass(plugin) and issubclass(plugin, self.base)):
      raise PluginError(f'cannot register {what} as a {self.kind}: it must be a subclass of '
                        f'{self.base.__module__}.{self.base.__qualname__}')
    name = plugin.__dict__.get('name')
    if not isinstance(name, str) or not name.isidentifier():
      raise PluginError(f'cannot register {what} as a {self.kind}: give the class its own '
                        "`name = '...'` (an identifier), the name configs select it by")
    fields = {f.name for f in dataclasses.fields(plugin)} if dataclasses.is_dataclass(
        plugin) else set()
    missing = sorted(set(getattr(plugin, '__abstractmethods__', ())) | {
        r for r in self.required if r not in fields and not hasattr(plugin, r)})
    if missing:
      raise PluginError(f'cannot register {self.kind} {name!r} ({what}): it does not define '
                        f'{", ".join(missing)}')
    taken = self._plugins.get(name)
    if taken is not None and not _same_definition(taken, plugin):
      raise PluginError(f'cannot register {self.kind} {name!r} ({what}): the name is taken by '
                        f'{self._plugins[name].__module__}.{self._plugins[name].__qualname__}; '
                        'pick another name')
    self._plugins[name] = plugin
    return plugin

  def unregister(self, name: str) -> None:
    """Removes a plug-in (for tests and notebooks that redefine one)."""
    self._plugins.pop(name, None)

  def get(self, name: str) -> Plugin:
    if name not in self._plugins:
      raise UserError(f'unknown {self.config_field} {name!r}; registered {self.kind}s: '
                      f'{", ".join(self._plugins)}')
    return self._plugins[name]

  def names(self) -> tuple[str, ...]:
    return tuple(self._plugins)

  def plugins(self) -> tuple[Plugin, ...]:
    return tuple(self._plugins.values())

  def __contains__(self, name: str) -> bool:
    return name in self._plugins


def _same_definition(a: type, b: type) -> bool:
  """The same class defined again (its file loaded twice, e.g. a config file): replaced."""
  def where(cls):
    try:
      source = inspect.getsourcefile(cls)
    except TypeError:  # Defined where no file is (python -c, a notebook cell).
      source = None
    return cls.__module__, cls.__qualname__, source

  return where(a) == where(b)

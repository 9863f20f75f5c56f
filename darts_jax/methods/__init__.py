"""Search methods as plug-ins: the interface (`base`), the registry, and the built-in methods.

  from darts_jax import methods
  method = methods.from_config(config, space)      # config.method.name
  @methods.register                                # a new method: one class, one file
  @dataclasses.dataclass(frozen=True)
  class MyDarts(methods.Darts): ...

Importing this package registers the built-in methods: darts, gdas, pc_darts, drnas,
random_ws.
"""

from darts_jax.methods.base import EpochEnd, Forward, Method, SearchEnd
from darts_jax.methods.registry import default_hyperparameters, from_config, get, names
from darts_jax.methods.registry import register, unregister
from darts_jax.methods.darts import Darts
from darts_jax.methods.gdas import Gdas
from darts_jax.methods.pc_darts import PcDarts
from darts_jax.methods.drnas import DrNas
from darts_jax.methods.random_ws import RandomWs

"""Search spaces as plug-ins: the interface (`base`), the registry, and the built-in spaces.

  from darts_jax import spaces
  space = spaces.from_config(config)         # config.search_space.name: 'darts', 'nb201', ...
  spaces.register(MySpace)                   # a class deriving from spaces.SearchSpace

Importing this package registers the built-in spaces, DARTS and NAS-Bench-201.
"""

from darts_jax.spaces.base import CellGraph, GraphEdge, SearchSpace, SupernetOptions
from darts_jax.spaces.registry import DEFAULT, for_arch, from_config, get, load_arch, names
from darts_jax.spaces.registry import register, unregister
from darts_jax.spaces.darts import space as _darts_space  # Registers 'darts'.
from darts_jax.spaces.nb201 import space as _nb201_space  # Registers 'nb201'.

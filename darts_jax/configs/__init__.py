"""Configs: the defaults every experiment config starts from, and the benchmarks' recipes.

`darts_jax.configs.search_config()` and the other defaults are re-exported here, so
experiment files write `from darts_jax import configs; configs.search_config()`.
"""

from darts_jax.configs.defaults import (SEARCH_ORDERS, augment_config, augment_digits_config,
                                        pipeline_config, search_config, search_digits_config,
                                        search_tiny_config)

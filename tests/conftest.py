"""Shared test setup: a persistent compilation cache so repeated tiny programs compile once."""

import os
import tempfile

import jax

jax.config.update('jax_compilation_cache_dir',
                  os.environ.get('DARTS_JAX_TEST_CACHE',
                                 os.path.join(tempfile.gettempdir(), 'darts_jax_test_xla_cache')))
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)

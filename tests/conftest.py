"""Shared test setup: a persistent compilation cache so repeated tiny programs compile once.

The cache lives for one test session (a fresh temporary directory, removed at exit) and is
shared with the pytest-xdist workers and the tests' subprocesses through
DARTS_JAX_TEST_CACHE (the controller sets it before the workers start): a cache left by an
earlier, killed run or another jax version is never read. Set DARTS_JAX_TEST_CACHE to a
directory of your own to keep the cache between runs.
"""

import atexit
import os
import shutil
import tempfile

import jax

if not os.environ.get('DARTS_JAX_TEST_CACHE'):
  _session_cache = tempfile.mkdtemp(prefix='darts_jax_test_xla_cache_')
  atexit.register(shutil.rmtree, _session_cache, ignore_errors=True)
  os.environ['DARTS_JAX_TEST_CACHE'] = _session_cache

jax.config.update('jax_compilation_cache_dir', os.environ['DARTS_JAX_TEST_CACHE'])
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)

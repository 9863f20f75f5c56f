"""What a search space's ops cost, for a search under a budget: per-op latency measured once
on the device (cached), and the cost tables' shared shape.

A space's `op_costs(kind, image_shape, batch_size)` returns, per cell type, a [num_edges,
num_ops] table: the cost of putting each op on each edge, summed over the cells of that
type in a network of the space's shape. kind: 'params' (weights), 'macs' (multiply-adds
per image) or 'latency' (ms per batch of batch_size, forward, measured here).
"""

from __future__ import annotations

import json
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from darts_jax import files

KINDS = ('params', 'macs', 'latency')
CACHE = os.path.expanduser('~/.cache/darts_jax/op_latency.json')


def _cache_key(name: str, shape) -> str:
  device = jax.devices()[0]
  return f'{device.platform}|{device.device_kind}|jax {jax.__version__}|{name}|{tuple(shape)}'


def op_latency_ms(name: str, make_module: Callable, shape, repeats: int = 5,
                  cache_path: str = CACHE) -> float:
  """Forward milliseconds of `make_module()` on uint-free float input `shape` (NHWC), the
  median of `repeats` runs after a warm-up, cached per (device, jax version, op, shape)."""
  key = _cache_key(name, shape)
  cache = {}
  if os.path.isfile(cache_path):
    try:
      with open(cache_path, encoding='utf-8') as f:
        cache = json.load(f)
    except (OSError, ValueError):
      cache = {}
  if key in cache:
    return float(cache[key])
  module = make_module()
  x = jnp.zeros(shape, jnp.float32)
  variables = module.init(jax.random.key(0), x, False)
  forward = jax.jit(lambda v, x: module.apply(v, x, False))
  jax.block_until_ready(forward(variables, x))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(forward(variables, x))
    times.append(time.perf_counter() - start)
  cache[key] = 1e3 * float(np.median(times))
  os.makedirs(os.path.dirname(cache_path), exist_ok=True)
  files.write_atomic(cache_path, lambda f: f.write(json.dumps(cache, indent=1).encode()))
  return cache[key]

"""Parameter initializers that can also draw on the host, for a fast network init.

`jax.jit(model.init)` is mostly random-number code: one key derivation per
module, a bit generator and a transform (erfinv for truncated normals) per
parameter shape, the key splits of every `nn.scan`. On a 2-core CPU XLA
compiled that in 15-24 s for the 8-cell search network and 43-56 s for the
20-cell evaluation network, to run it in a fraction of a second (docs/history.md, "A host
init"). `host_init` only traces the init (`jax.eval_shape`), with every
initializer of this module returning a `SpecBox` that says how to draw the
parameter, then draws each parameter with numpy from (seed, parameter path).

Every parameter of the darts_jax networks comes from `initializer(Spec(...))`:
outside `host_init` it is the flax initializer the spec names (same bits as
flax's), so `model.init(key, ...)` works as usual.
"""

import contextlib
import contextvars
import dataclasses
import math
import zlib
from typing import Any, Callable

from absl import logging
from flax import struct
from flax.core import meta
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

_RECORDING = contextvars.ContextVar('darts_jax_initializers_recording', default=False)
# flax's truncated_normal variance scaling divides by the standard deviation of a
# standard normal truncated to [-2, 2].
_TRUNCATED_STD = 0.87962566103423978


@dataclasses.dataclass(frozen=True)
class Spec:
  """One parameter initializer, described so that JAX and numpy draw it alike.

  kind: 'fan_in' (flax's variance_scaling(scale, 'fan_in', distribution, in_axis,
  out_axis, batch_axis)), 'uniform' (uniform(-bound, bound)) or 'constant' (value).
  `batch_axis`: axes of independent copies (a group's edges), not part of the fan in.
  """
  kind: str
  scale: float = 1.0
  distribution: str = 'truncated_normal'  # Or 'uniform' (kind 'fan_in').
  in_axis: int | tuple[int, ...] = -2
  out_axis: int | tuple[int, ...] = -1
  batch_axis: tuple[int, ...] = ()
  bound: float = 0.0  # kind 'uniform'.
  value: float = 0.0  # kind 'constant'.

  def flax_initializer(self) -> Callable:
    if self.kind == 'fan_in':
      return nn.initializers.variance_scaling(self.scale, 'fan_in', self.distribution,
                                              in_axis=self.in_axis, out_axis=self.out_axis,
                                              batch_axis=self.batch_axis)
    if self.kind == 'uniform':
      return lambda key, shape, dtype=jnp.float32: jax.random.uniform(
          key, shape, dtype, -self.bound, self.bound)
    if self.kind == 'constant':
      return nn.initializers.constant(self.value)
    raise ValueError(f'unknown initializer kind {self.kind!r}')

  def fan_in(self, shape) -> int:
    """flax's fan in: the in axes times the receptive field (all but in, out and batch)."""
    def size(axes):
      axes = (axes,) if isinstance(axes, int) else axes
      return math.prod(shape[a] for a in axes)
    in_size, out_size = size(self.in_axis), size(self.out_axis)
    batch_size = size(self.batch_axis)
    return in_size * (math.prod(shape) // max(in_size * out_size * batch_size, 1))

  def sample(self, rng: np.random.Generator, shape, base_shape) -> np.ndarray:
    """Values of `shape`: iid slices of `base_shape` (the shape the module asked for,
    before `nn.scan` / `nn.vmap` stacked it)."""
    if self.kind == 'constant':
      return np.full(shape, self.value, np.float32)
    if self.kind == 'uniform':
      return rng.uniform(-self.bound, self.bound, shape).astype(np.float32)
    variance = self.scale / max(self.fan_in(base_shape), 1)
    if self.distribution == 'uniform':
      limit = math.sqrt(3 * variance)
      return rng.uniform(-limit, limit, shape).astype(np.float32)
    if self.distribution != 'truncated_normal':
      raise ValueError(f'unknown distribution {self.distribution!r}')
    return (truncated_normal(rng, shape) * (math.sqrt(variance) / _TRUNCATED_STD)
            ).astype(np.float32)


def truncated_normal(rng: np.random.Generator, shape) -> np.ndarray:
  """Standard normal truncated to [-2, 2], by redrawing the values outside."""
  z = rng.standard_normal(shape)
  outside = np.abs(z) > 2
  while outside.any():
    z[outside] = rng.standard_normal(int(outside.sum()))
    outside = np.abs(z) > 2
  return z


class SpecBox(struct.PyTreeNode, meta.AxisMetadata):
  """A parameter placeholder inside `host_init`: its value plus the spec to draw it with.

  `stacked` lists the axes that `nn.scan` / `nn.vmap` inserted, oldest first.
  """
  value: Any
  spec: Spec = struct.field(pytree_node=False)
  stacked: tuple[int, ...] = struct.field(pytree_node=False, default=())

  def unbox(self):
    return self.value

  def replace_boxed(self, val):
    return self.replace(value=val)

  def add_axis(self, index: int, params):
    del params
    return self.replace(stacked=self.stacked + (index,))

  def remove_axis(self, index: int, params):
    del params
    if not self.stacked or self.stacked[-1] != index:
      raise ValueError(f'axis {index} was not the last one added ({self.stacked})')
    return self.replace(stacked=self.stacked[:-1])

  def base_shape(self, shape) -> tuple[int, ...]:
    shape = list(shape)
    for axis in reversed(self.stacked):
      del shape[axis]
    return tuple(shape)


def initializer(spec: Spec) -> Callable:
  """A flax initializer for `spec` (inside `host_init`: a SpecBox placeholder)."""
  flax_init = spec.flax_initializer()

  def init(key, shape, dtype=jnp.float32):
    if _RECORDING.get():
      return SpecBox(jnp.zeros(shape, dtype), spec)
    return flax_init(key, shape, dtype)

  return init


def kaiming_normal(fan_in_axes) -> Callable:
  """PyTorch's kaiming_normal_ (fan in, gain sqrt(2)) as flax's truncated normal."""
  return initializer(Spec('fan_in', 2.0, 'truncated_normal', in_axis=fan_in_axes))


lecun_normal = initializer(Spec('fan_in', 1.0, 'truncated_normal'))  # flax Dense default.
# PyTorch's default init for Conv2d and Linear weights, kaiming_uniform(a=√5),
# is uniform(±1 / sqrt(fan_in)): variance scaling 1/3, fan_in, uniform.
torch_default = initializer(Spec('fan_in', 1 / 3, 'uniform'))


def torch_default_over(in_axes, batch_axes=(0,)) -> Callable:
  """torch_default for a kernel whose input axes are `in_axes` and whose `batch_axes`
  stack independent kernels (the edges of a group), e.g. [E, k, k, C] depthwise."""
  return initializer(Spec('fan_in', 1 / 3, 'uniform', in_axis=in_axes,
                          batch_axis=tuple(batch_axes)))

zeros = initializer(Spec('constant', value=0.0))
ones = initializer(Spec('constant', value=1.0))


def torch_bias(fan_in: int) -> Callable:
  """PyTorch's Linear bias init, uniform(±1 / sqrt(fan_in))."""
  return initializer(Spec('uniform', bound=1.0 / max(fan_in, 1) ** 0.5))


@contextlib.contextmanager
def _recording():
  token = _RECORDING.set(True)
  try:
    yield
  finally:
    _RECORDING.reset(token)


def host_init(init_fn: Callable[..., dict], key: jax.Array, seed: int) -> dict:
  """`init_fn(key)` (a flax `model.init`) with the parameters drawn by numpy.

  `init_fn` is only traced (`jax.eval_shape`), with every initializer returning
  a SpecBox: nothing is compiled. Each parameter is drawn from numpy's
  generator seeded with (seed, its path), so its values do not depend on the
  other parameters, the device count or the backend. Batch statistics start
  as BatchNorm2d starts them: mean 0, var 1. A variable from
  anywhere else (a user-registered op with flax's own initializers) makes the
  whole init fall back to `jax.jit(init_fn)(key)`, with a warning.
  """
  # Fresh wrappers: JAX caches traces by function, and the recording context is
  # not part of the cache key.
  with _recording():
    variables = jax.eval_shape(lambda k: init_fn(k), key)  # pylint: disable=unnecessary-lambda
  is_box = lambda x: isinstance(x, SpecBox)
  leaves = jax.tree_util.tree_leaves_with_path(variables, is_leaf=is_box)
  unknown = [jax.tree_util.keystr(p) for p, leaf in leaves
             if not is_box(leaf) and _initial_batch_stat(jax.tree_util.keystr(p)) is None]
  if unknown:
    logging.warning('%d variable(s) not created by darts_jax.nn.initializers (first: %s): the '
                    'init runs as a jitted flax init, slower to compile; create them with '
                    'darts_jax.nn.initializers for the fast host init', len(unknown), unknown[0])
    return dict(jax.jit(lambda k: init_fn(k))(key))  # pylint: disable=unnecessary-lambda

  def draw(path, leaf):
    name = jax.tree_util.keystr(path)
    if is_box(leaf):
      rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
      shape = leaf.value.shape
      return jnp.asarray(leaf.spec.sample(rng, shape, leaf.base_shape(shape)),
                         leaf.value.dtype)
    return jnp.asarray(np.full(leaf.shape, _initial_batch_stat(name)), leaf.dtype)

  return jax.tree_util.tree_map_with_path(draw, dict(variables), is_leaf=is_box)


def _initial_batch_stat(name: str) -> float | None:
  """A running mean starts at 0 and a running variance at 1; None for other variables."""
  if name.startswith("['batch_stats']"):
    if name.endswith("['mean']"):
      return 0.0
    if name.endswith("['var']"):
      return 1.0
  return None


def zeros_like(tree) -> Any:
  """Zeros of every leaf's shape and dtype, made on the host (no XLA program per shape)."""
  return jax.tree.map(lambda x: jnp.asarray(np.zeros(x.shape, x.dtype)), tree)

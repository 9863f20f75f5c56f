"""What a DARTS cell costs: the weights and multiply-adds of an evaluation network (the
summary's counts), and the cost of each op on each edge for a search under a budget.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from darts_jax.errors import UserError
from darts_jax.nn import params as params_lib
from darts_jax.spaces import costs
from darts_jax.spaces.darts import eval_ops
from darts_jax.spaces.darts import supernet


def _abstract_variables(model: nn.Module, input_shape: Sequence[int]) -> Any:
  x = jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32)
  return jax.eval_shape(lambda k, x: model.init(k, x, train=False),
                        jax.random.key(0), x)


def count_params(model: nn.Module, input_shape: Sequence[int]) -> int:
  """Trainable weights of `model` without its auxiliary head (shapes only).

  BN running statistics are not weights. `input_shape` is NHWC, e.g. (1, 32, 32, 3).
  """
  return params_lib.count_weights(_abstract_variables(model, input_shape).get('params', {}))


def _layer_macs(module: nn.Module, x: Any, out: Any) -> int:
  """Multiply-adds per example of one conv or dense call (0 otherwise)."""
  if not hasattr(out, 'shape') or not hasattr(x, 'shape'):
    return 0
  positions = math.prod(out.shape[1:-1])  # Output pixels (1 for dense).
  c_in, c_out = x.shape[-1], out.shape[-1]
  if isinstance(module, eval_ops.Conv):
    kh, kw = eval_ops._pair(module.kernel_size)  # pylint: disable=protected-access
    return positions * kh * kw * c_in * c_out
  if isinstance(module, eval_ops.DepthwiseConv):
    return positions * module.kernel_size ** 2 * c_out
  if isinstance(module, nn.Conv):
    ks = module.kernel_size
    ks = (ks,) * (x.ndim - 2) if isinstance(ks, int) else tuple(ks)
    return positions * math.prod(ks) * c_in // module.feature_group_count * c_out
  if isinstance(module, nn.Dense):
    return positions * c_in * c_out
  return 0


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
  """Multiply-adds per image of the inference network (no auxiliary head).

  Counts convolutions and linear layers only (BN, ReLU, pooling and additions
  are left out). It traces `model.init(..., train=False)` under
  `jax.eval_shape` inside `flax.linen.intercept_methods`: every call of
  `eval_ops.Conv`, `eval_ops.DepthwiseConv`, `nn.Conv` or `nn.Dense`
  outside the auxiliary head is counted from its input channels, kernel size
  and output shape. Counting at the module level, not from the traced
  program, keeps the count independent of how `darts_jax.nn.conv` lowers a conv
  on this platform (e.g. depthwise as shifted slices on CPU), and strided
  convs count only the outputs they produce. `input_shape` is NHWC; the
  result is per image.
  """
  total = 0

  def interceptor(next_fun, args, kwargs, context):
    nonlocal total
    out = next_fun(*args, **kwargs)
    module = context.module
    if (context.method_name == '__call__' and args
        and not any(str(n).startswith(params_lib.AUXILIARY_PREFIX) for n in module.path)):
      total += _layer_macs(module, args[0], out)
    return out

  with nn.intercept_methods(interceptor):
    _abstract_variables(model, input_shape)
  return total


def cell_layout(layers: int, init_channels: int, stem: str, image_size: int):
  """(reduction, channels, input size) of each cell of the search network's shape."""
  size = math.ceil(image_size / 2 ** supernet.stem_strides(stem))
  channels, cells = init_channels, []
  reductions = supernet.reduction_layers(layers)
  for i in range(layers):
    reduction = i in reductions
    if reduction:
      channels *= 2
    cells.append((reduction, channels, size))
    if reduction:
      size = math.ceil(size / 2)
  return cells


def op_cost(kind: str, op: str, channels: int, stride: int, size: int,
            batch_size: int) -> float:
  """One evaluation op's cost at (channels, stride, input size)."""
  if op == 'none':
    return 0.0
  make = lambda: eval_ops.get_augment_op(op)(channels, stride, True)
  shape = (1, size, size, channels)
  if kind == 'params':
    return float(count_params(make(), shape))
  if kind == 'macs':
    return float(count_macs(make(), shape))
  return costs.op_latency_ms(f'darts:{op}:stride{stride}', make,
                             (batch_size, size, size, channels))


def op_costs(space, kind: str, image_shape: Sequence[int],
             batch_size: int) -> dict[str, np.ndarray]:
  """Per cell type, [num_edges, num_ops]: each op's cost on each edge, summed over the
  cells of that type (the search network's channels and resolutions)."""
  if kind not in costs.KINDS:
    raise UserError(f'unknown config.budget.kind {kind!r}; use one of {costs.KINDS}')
  tables = {c: np.zeros((space.num_edges, len(space.primitives))) for c in space.cell_types}
  memo = {}
  for reduction, channels, size in cell_layout(space.layers, space.init_channels, space.stem,
                                               image_shape[0]):
    cell = 'reduce' if reduction else 'normal'
    for row, (_, src) in enumerate(space.edges()):
      stride = 2 if reduction and src < 2 else 1
      at = size if src < 2 else (math.ceil(size / 2) if reduction else size)
      for k, op in enumerate(space.primitives):
        key = (op, channels, stride, at)
        if key not in memo:
          memo[key] = op_cost(kind, op, channels, stride, at, batch_size)
        tables[cell][row, k] += memo[key]
  return tables

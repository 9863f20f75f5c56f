"""The inference program rewritten for an exporter: darts_jax's own primitives replaced.

`darts_jax.nn.conv` and `darts_jax.nn.pooling` define JAX primitives of their own (the
depthwise convolution as a sum of shifted slices, the 3x3 box sum of the average pool)
that are fast on XLA:CPU but that no converter knows. `rewrite(fn, spec, table)` traces
`fn` once into a jaxpr and returns a function that evaluates that jaxpr equation by
equation, with the calls inside it (jit, custom_jvp, custom_vjp, remat) inlined and:

* an equation whose primitive is named in `table` replaced by `table[name](primitive,
  *operands, **params)`;
* with `inline_own=True`, any other primitive that darts_jax defines (its implementation
  is a darts_jax function) replaced by that implementation, traced inline (plain lax:
  pads, slices, adds);
* with `fold=True`, equations whose operands are all constants and whose results have
  static shapes evaluated at trace time (`jax.ensure_compile_time_eval`): the weights' preprocessing
  (BN multipliers, kernel reshapes) becomes constants, and the pad values the ONNX table
  needs are known.

Tables: `STABLEHLO` keeps every primitive (their lowerings are plain StableHLO) except the
depthwise convolution, which becomes platform dependent: the shifted-slice sum on CPU, a
grouped convolution (`lax.conv_general_dilated(feature_group_count=C)`) on GPU and TPU,
the lowering `darts_jax.nn.conv.resolve_impl` picks on each. `ONNX` makes the depthwise
convolution a grouped convolution (ONNX Conv with group=C) and every `lax.pad` a
`jnp.pad` (jax2onnx 0.17.1's `lax.pad` lowering fails on a symbolic batch dimension; its
`jnp.pad` one does not).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.extend.core as jcore
import jax.numpy as jnp
from jax import lax
import numpy as np

from darts_jax.nn import conv

# Primitives that only call a jaxpr: evaluated inline.
_CALLS = frozenset({'pjit', 'jit', 'closed_call', 'core_call', 'custom_jvp_call',
                    'custom_vjp_call', 'custom_vjp_call_jaxpr', 'remat', 'checkpoint'})
# Results larger than this are not folded into constants (a folded weight is its size).
_FOLD_MAX_ELEMENTS = 1 << 24

Replacement = Callable[..., Any]


def is_own_primitive(primitive) -> bool:
  """Whether darts_jax defines `primitive` (its implementation is a darts_jax function)."""
  impl = getattr(primitive, 'impl', None)
  fn = getattr(impl, '__wrapped__', None)
  return getattr(fn, '__module__', '').startswith('darts_jax.')


def _grouped_depthwise(x, kernels, *, dilation, pad, out_lead, unrolled):
  """The depthwise primitive's result as one grouped convolution ('xla' in nn.conv)."""
  del pad, unrolled  # Another padding of the input gives the same 'same' result.
  y = conv.depthwise_conv_edges(x, kernels, 1, dilation, impl='xla')
  if out_lead == 1 and y.shape[0] > 1:
    y = jnp.sum(y, axis=0, keepdims=True)
  return y


def depthwise_as_grouped_conv(primitive, x, kernels, **params):
  del primitive
  return _grouped_depthwise(x, kernels, **params)


def depthwise_by_platform(primitive, x, kernels, **params):
  """CPU: the primitive (shifted slices); elsewhere the grouped convolution."""
  return lax.platform_dependent(
      x, kernels, cpu=lambda x, k: primitive.bind(x, k, **params),
      default=lambda x, k: _grouped_depthwise(x, k, **params))


def pad_as_jnp_pad(primitive, x, value, *, padding_config):
  """lax.pad as jnp.pad where it can be (a constant value, no interior or negative pad)."""
  simple = all(i == 0 and lo >= 0 and hi >= 0 for lo, hi, i in padding_config)
  if not simple or isinstance(value, jax.core.Tracer):
    return primitive.bind(x, value, padding_config=padding_config)
  widths = [(int(lo), int(hi)) for lo, hi, _ in padding_config]
  return jnp.pad(x, widths, constant_values=np.asarray(value).item())


STABLEHLO: Mapping[str, Replacement] = {'darts_depthwise_conv': depthwise_by_platform}
ONNX: Mapping[str, Replacement] = {'darts_depthwise_conv': depthwise_as_grouped_conv,
                                   'pad': pad_as_jnp_pad}


def _inner_jaxpr(params) -> tuple[Any, tuple]:
  inner = params.get('jaxpr', params.get('call_jaxpr'))
  if isinstance(inner, jcore.ClosedJaxpr):
    return inner.jaxpr, tuple(inner.consts)
  return inner, ()


def _static_shapes(outvars) -> bool:
  return all(all(isinstance(d, (int, np.integer)) for d in getattr(v.aval, 'shape', ()))
             and int(np.prod(getattr(v.aval, 'shape', ()))) <= _FOLD_MAX_ELEMENTS
             for v in outvars)


def _is_constant(value) -> bool:
  return not isinstance(value, jax.core.Tracer)


def _has_subjaxprs(params) -> bool:
  return any(isinstance(p, (jcore.Jaxpr, jcore.ClosedJaxpr)) for p in params.values())


def evaluate(jaxpr, consts, args, table: Mapping[str, Replacement],
             inline_own: bool = False, fold: bool = False) -> list:
  """The values of `jaxpr`'s outputs, its equations rewritten as the module says."""
  env: dict = {}

  def read(v):
    return v.val if isinstance(v, jcore.Literal) else env[v]

  env.update(zip(jaxpr.constvars, consts))
  env.update(zip(jaxpr.invars, args))
  for eqn in jaxpr.eqns:
    operands = [read(v) for v in eqn.invars]
    primitive, params = eqn.primitive, eqn.params
    with eqn.ctx.manager:
      if primitive.name in _CALLS:
        inner, inner_consts = _inner_jaxpr(params)
        out = evaluate(inner, inner_consts, operands, table, inline_own, fold)
      elif (fold and all(_is_constant(o) for o in operands) and not _has_subjaxprs(params)
            and _static_shapes(eqn.outvars)):
        with jax.ensure_compile_time_eval():
          out = primitive.bind(*operands, **primitive.get_bind_params(params))
      elif primitive.name in table:
        out = table[primitive.name](primitive, *operands, **params)
      elif inline_own and is_own_primitive(primitive):
        out = primitive.impl.__wrapped__(*operands, **params)
      else:
        out = primitive.bind(*operands, **primitive.get_bind_params(params))
    if not primitive.multiple_results:
      out = [out]
    for var, value in zip(eqn.outvars, out):
      if not isinstance(var, jcore.DropVar):
        env[var] = value
  return [read(v) for v in jaxpr.outvars]


def input_spec(image_shape) -> jax.ShapeDtypeStruct:
  """uint8 [b, H, W, C] with a symbolic batch dimension b (every export's input)."""
  (batch,) = jax.export.symbolic_shape('b')
  return jax.ShapeDtypeStruct((batch,) + tuple(image_shape), jnp.uint8)


def rewrite(fn: Callable, spec: jax.ShapeDtypeStruct, table: Mapping[str, Replacement],
            inline_own: bool = False, fold: bool = False) -> Callable:
  """`fn` (one array in, one out) as a function that evaluates its rewritten jaxpr.

  `spec` may have symbolic dimensions (jax.export.symbolic_shape); the returned function
  must then be traced with the same ones (pass `spec` to the exporter).
  """
  closed = jax.make_jaxpr(fn)(spec)

  def rewritten(x):
    (y,) = evaluate(closed.jaxpr, closed.consts, [x], table, inline_own, fold)
    return y

  return rewritten


def primitive_names(fn: Callable, spec: jax.ShapeDtypeStruct) -> set[str]:
  """The primitives of `fn`'s jaxpr, calls included (to see what an exporter gets)."""
  names: set[str] = set()

  def walk(jaxpr):
    for eqn in jaxpr.eqns:
      names.add(eqn.primitive.name)
      for sub in jcore.jaxprs_in_params(eqn.params):
        walk(sub)

  walk(jax.make_jaxpr(fn)(spec).jaxpr)
  return names

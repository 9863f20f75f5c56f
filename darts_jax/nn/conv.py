"""Convolution primitives shared by the search and evaluation networks.

Depthwise convolution is the one op whose best XLA lowering depends on the
platform. GPUs and TPUs have fast grouped-convolution kernels, so there we use
`lax.conv_general_dilated(..., feature_group_count=C)`. XLA:CPU runs grouped
convolutions on a slow generic path (batch 64, 32x32x16, 3x3: forward 57 ms,
gradient 124 ms on a 2-core Intel Xeon; oneDNN does not take them either), so
CPU uses two bilinear JAX primitives, the convolution as a sum of shifted
slices (sum over taps t of shift_t(x) * K_t) and its kernel gradient (per tap,
sum over B, H, W of shift_t(x) * g), whose JVPs and transposes are written with
each other, so every derivative (reverse, forward, any nesting) stays in this
form. Two lowerings of the primitives:
- 'slices' (the CPU default): all k*k taps unrolled. XLA fuses the convolution
  into one pass over the output and the kernel gradient into one variadic
  reduce that reads x and g once. Same machine, same shapes: 3x3 forward 0.9 ms,
  kernel gradient 4.6 ms (5x5: 1.9 and 5.8 ms) as one reduce over (B, H, W).
- 'loop': a loop over the kernel rows (the k taps of a row unrolled in the
  body), so the program grows with k, not k*k; but each row reads a
  dynamically sliced input and XLA's loop over it is ~10x slower (3x3 forward
  9.5 ms, kernel gradient 6.6 ms; 5x5: 19.7 and 14.6 ms). The CPU default until
  2026-12-01; docs/history.md has the whole-step numbers of both.
'masked' is a dense convolution with a channel-diagonal kernel (C times the
arithmetic, one op on XLA's dense path).
"""

import functools

import jax
import jax.core
import jax.extend.core as jex_core
import jax.numpy as jnp
from jax import lax
from jax.interpreters import ad, batching, mlir

_DIMS = ("NHWC", "HWIO", "NHWC")
IMPLEMENTATIONS = ("auto", "xla", "slices", "masked", "loop")


def same_padding(kernel_size: int, dilation: int) -> int:
  return dilation * (kernel_size - 1) // 2


def resolve_impl(impl: str = "auto") -> str:
  if impl not in IMPLEMENTATIONS:
    raise ValueError(f"unknown depthwise impl {impl!r}; use one of {IMPLEMENTATIONS}")
  if impl == "auto":
    return "slices" if jax.default_backend() == "cpu" else "xla"
  return impl


def _shifted(xp, i, j, dilation, h, w, offset):
  r, c = offset + i * dilation, offset + j * dilation
  return xp[..., r:r + h, c:c + w, :]


def _slice_conv(x, kernels, dilation, pad):
  """out[e] = sum_taps shift(x[e or 0]) * kernels[e, tap]; stride 1, 'same'."""
  k = kernels.shape[1]
  h, w = x.shape[-3:-1]
  xp, offset = _pad_input(x, k, dilation, pad)
  kern = kernels[:, None, None, None].astype(x.dtype)  # [E, 1, 1, 1, k, k, C]
  out = 0.
  for i in range(k):
    for j in range(k):
      out = out + _shifted(xp, i, j, dilation, h, w, offset) * kern[..., i, j, :]
  return out


def _slices_conv_impl(x, kernels, dilation, pad, out_lead):
  y = _slice_conv(x, kernels, dilation, pad)
  if out_lead == 1 and y.shape[0] > 1:
    y = jnp.sum(y, axis=0, keepdims=True)
  return y


def _slices_kgrad_impl(x, g, k, dilation, pad):
  """[E, k, k, C]: per tap, sum over (B, H, W) of shift(x) * g, all k*k taps unrolled.

  One variadic reduce over the k*k products, so XLA emits a single pass that
  reads x and g once (k*k separate reductions each read both again). It sums
  over (H, W) per image first: XLA:CPU's reduce loop computes one output element
  at a time, and with (B, C) kept each one walks a single image that stays in
  cache (reducing over B too walks the whole batch once per channel).
  """
  h, w = x.shape[-3:-1]
  xp, offset = _pad_input(x, k, dilation, pad)
  products = tuple(_shifted(xp, i, j, dilation, h, w, offset) * g
                   for i in range(k) for j in range(k))
  zeros = tuple(jnp.zeros((), g.dtype) for _ in products)
  sums = lax.reduce(products, zeros, lambda a, b: tuple(u + v for u, v in zip(a, b)),
                    (2, 3))                                        # k*k x [E, B, C]
  return jnp.stack(sums, axis=1).sum(2).reshape((g.shape[0], k, k, g.shape[-1]))


# ---------------------------------------------------------------------------
# 'loop': the slice sum of 'slices', but as a loop over the k kernel rows
# (lax.fori_loop / lax.scan, one dynamic_slice per row), so the program does
# not grow with k*k. Both lowerings implement three linear maps, closed under
# differentiation:
#   conv(x, K)     = sum_t S_t(x) * K_t                 (S_t: tap t's shift)
#   kgrad(x, g)_t  = sum_{b,h,w} S_t(x) * g
#   d conv / d x   = conv(g, flip(K)),  d conv / d K = kgrad(x, g)
#   d kgrad / d g  = conv(x, ct),       d kgrad / d x = conv(g, flip(ct))
# conv and kgrad are JAX primitives whose transpose rules are written with each
# other, so derivatives of any order and mode (the exact DARTS hypergradient is
# forward-over-reverse) stay in the chosen lowering.


def _pad_input(x, k, dilation, pad):
  """x zero-padded by `pad` (None: the 'same' padding) and the offset of tap 0 in it.

  A padding larger than 'same' lets convolutions of different kernel sizes that
  read one tensor pad it identically, so XLA computes that padded copy once.
  """
  same = same_padding(k, dilation)
  pad = same if pad is None else pad
  if pad < same:
    raise ValueError(f'padding {pad} is less than the {same} of a {k}x{k} kernel '
                     f'with dilation {dilation}')
  xp = jnp.pad(x, [(0, 0)] * (x.ndim - 3) + [(pad, pad), (pad, pad), (0, 0)])
  return xp, pad - same


def _row_slice(xp, i, dilation, h, offset):
  """Rows offset + i*dilation .. +h of the padded input (all columns)."""
  zero = jnp.zeros_like(i)
  start = (zero,) * (xp.ndim - 3) + (offset + i * dilation, zero, zero)
  return lax.dynamic_slice(xp, start, xp.shape[:-3] + (h,) + xp.shape[-2:])


def _loop_conv_impl(x, kernels, dilation, pad, out_lead):
  """sum over taps of shift(x) * kernels[:, tap]; x [1|E, B, H, W, C] -> [out_lead, B, H, W, C].

  out_lead == 1 with E kernels sums the E edge outputs (the input gradient of
  a shared input). The loop runs over the k kernel rows; the k taps of a row
  are unrolled in the body (static column slices), so XLA fuses a row into
  one pass over the output.
  """
  e, k, _, c = kernels.shape
  h, w = x.shape[-3:-1]
  xp, offset = _pad_input(x, k, dilation, pad)
  kern = kernels.astype(x.dtype)
  out_shape = (out_lead,) + x.shape[1:-1] + (c,)

  def body(i, acc):
    rows = _row_slice(xp, i, dilation, h, offset)                  # [1|E, B, h, W+2p, C]
    kr = lax.dynamic_index_in_dim(kern, i, axis=1, keepdims=False)  # [E, k, C]
    y = 0.
    for j in range(k):
      c0 = offset + j * dilation
      y = y + rows[..., c0:c0 + w, :] * kr[:, None, None, None, j, :]
    if out_lead == 1 and e > 1:  # Sum the edges with adds (an XLA reduce here is slow).
      y = functools.reduce(lambda a, b: a + b, [y[n:n + 1] for n in range(e)])
    return acc + y

  return lax.fori_loop(0, k, body, jnp.zeros(out_shape, x.dtype))


def _loop_kgrad_impl(x, g, k, dilation, pad):
  """[E, k, k, C]: per tap, sum over (B, H, W) of shift(x) * g; x [1|E, ...], g [E, ...]."""
  h, w = x.shape[-3:-1]
  xp, offset = _pad_input(x, k, dilation, pad)

  def body(carry, i):
    rows = _row_slice(xp, i, dilation, h, offset)
    cols = [offset + j * dilation for j in range(k)]
    taps = [jnp.sum(rows[..., c0:c0 + w, :] * g, axis=(1, 2, 3)) for c0 in cols]  # k x [E, C]
    return carry, jnp.stack(taps, axis=1)                          # [E, k, C]

  _, out = lax.scan(body, None, jnp.arange(k, dtype=jnp.int32))    # [k, E, k, C]
  return jnp.moveaxis(out, 0, 1)


def _flip(kernels):
  return kernels[:, ::-1, ::-1, :]


def _conv_impl(x, kernels, dilation, pad, out_lead, unrolled):
  impl = _slices_conv_impl if unrolled else _loop_conv_impl
  return impl(x, kernels, dilation, pad, out_lead)


def _kgrad_impl(x, g, k, dilation, pad, unrolled):
  return (_slices_kgrad_impl if unrolled else _loop_kgrad_impl)(x, g, k, dilation, pad)


def _tap_conv(x, kernels, dilation, out_lead, unrolled, pad=None):
  return _tap_conv_p.bind(x, kernels, dilation=dilation, pad=pad, out_lead=out_lead,
                          unrolled=unrolled)


def _tap_kgrad(x, g, k, dilation, unrolled, pad=None):
  return _tap_kgrad_p.bind(x, g, k=k, dilation=dilation, pad=pad, unrolled=unrolled)


def _edge_cotangent(g, kernels_shape, out_lead):
  """The output cotangent per edge (a summed output was seen by every edge)."""
  e = kernels_shape[0]
  if out_lead == 1 and e > 1:
    return jnp.broadcast_to(g, (e,) + g.shape[1:])
  return g


def _conv_transpose_x(ct, x, kernels, *, dilation, pad, out_lead, unrolled):
  del pad
  ct = _edge_cotangent(ct, kernels.shape, out_lead)
  dx = _tap_conv(ct, _flip(kernels), dilation, x.aval.shape[0], unrolled)
  return dx.astype(x.aval.dtype)


def _conv_transpose_kernels(ct, x, kernels, *, dilation, pad, out_lead, unrolled):
  ct = _edge_cotangent(ct, kernels.aval.shape, out_lead)
  dk = _tap_kgrad(x, ct, kernels.aval.shape[1], dilation, unrolled, pad)
  return dk.astype(kernels.aval.dtype)


def _kgrad_transpose_x(ct, x, g, *, k, dilation, pad, unrolled):
  del k, pad
  dx = _tap_conv(g, _flip(ct.astype(g.dtype)), dilation, x.aval.shape[0], unrolled)
  return dx.astype(x.aval.dtype)


def _kgrad_transpose_g(ct, x, g, *, k, dilation, pad, unrolled):
  del k
  dg = _tap_conv(x, ct.astype(x.dtype), dilation, g.aval.shape[0], unrolled, pad)
  return dg.astype(g.aval.dtype)


def _conv_shape(x, kernels, *, dilation, pad, out_lead, unrolled):
  del dilation, pad, unrolled
  return jax.core.ShapedArray((out_lead,) + x.shape[1:-1] + kernels.shape[-1:], x.dtype)


def _kgrad_shape(x, g, *, k, dilation, pad, unrolled):
  del x, dilation, pad, unrolled
  return jax.core.ShapedArray((g.shape[0], k, k, g.shape[-1]), g.dtype)


def _batch_by_map(primitive):
  """vmap rule: map the primitive over the batch axis (rarely used; correctness only)."""

  def rule(args, dims, **params):
    size = next(a.shape[d] for a, d in zip(args, dims) if d is not None)
    args = [jnp.broadcast_to(a[None], (size,) + a.shape) if d is None
            else jnp.moveaxis(a, d, 0) for a, d in zip(args, dims)]
    return lax.map(lambda operands: primitive.bind(*operands, **params), tuple(args)), 0

  return rule


def _define_bilinear(name, impl, static_argnames, shape_rule, transpose_first,
                     transpose_second):
  primitive = jex_core.Primitive(name)
  primitive.def_impl(jax.jit(impl, static_argnames=static_argnames))
  primitive.def_abstract_eval(shape_rule)
  mlir.register_lowering(primitive, mlir.lower_fun(impl, multiple_results=False))
  ad.defbilinear(primitive, transpose_first, transpose_second)
  batching.primitive_batchers[primitive] = _batch_by_map(primitive)
  return primitive


# Primitives rather than custom VJPs: JAX cannot apply forward mode (jvp) to a
# custom_vjp function, and a primitive also lowers faster (no traced fwd/bwd
# pair per call). Both maps are bilinear: the JVP is the sum of the two partial
# applications, the transposes are the rules above. `unrolled` selects the
# 'slices' form (all k*k taps unrolled) instead of the 'loop' form.
_tap_conv_p = _define_bilinear(
    'darts_depthwise_conv', _conv_impl, ('dilation', 'pad', 'out_lead', 'unrolled'),
    _conv_shape, _conv_transpose_x, _conv_transpose_kernels)
_tap_kgrad_p = _define_bilinear(
    'darts_depthwise_kernel_grad', _kgrad_impl, ('k', 'dilation', 'pad', 'unrolled'),
    _kgrad_shape, _kgrad_transpose_x, _kgrad_transpose_g)


def _depthwise_xla(x, kernels, stride, dilation):
  e = kernels.shape[0]
  k = kernels.shape[1]
  c = x.shape[-1]
  x = jnp.broadcast_to(x, (e,) + x.shape[1:])
  _, b, h, w, _ = x.shape
  x4 = jnp.moveaxis(x, 0, -2).reshape(b, h, w, e * c)
  ker = kernels.reshape(e, k, k, 1, c).transpose(1, 2, 3, 0, 4).reshape(k, k, 1, e * c)
  pad = same_padding(k, dilation)
  y = lax.conv_general_dilated(
      x4, ker.astype(x4.dtype), window_strides=(stride, stride),
      padding=((pad, pad), (pad, pad)), rhs_dilation=(dilation, dilation),
      dimension_numbers=_DIMS, feature_group_count=e * c)
  return jnp.moveaxis(y.reshape(y.shape[:3] + (e, c)), -2, 0)


def _depthwise_masked(x, kernels, stride, dilation):
  """Depthwise as a dense convolution whose kernel is zero off the channel diagonal.

  C times the arithmetic of a depthwise conv, but one XLA op on the fast dense
  path (forward and backward), which keeps programs small on CPU.
  """
  e, k, _, c = kernels.shape
  pad = same_padding(k, dilation)
  eye = jnp.eye(c, dtype=kernels.dtype)
  def conv(inp, ker):
    return lax.conv_general_dilated(
        inp, ker.astype(inp.dtype), window_strides=(stride, stride),
        padding=((pad, pad), (pad, pad)), rhs_dilation=(dilation, dilation),
        dimension_numbers=_DIMS)
  if x.shape[0] == 1:
    dense = jnp.einsum("eijc,cd->ijced", kernels, eye).reshape(k, k, c, e * c)
    y = conv(x[0], dense)
    return jnp.moveaxis(y.reshape(y.shape[:3] + (e, c)), -2, 0)
  dense = jnp.einsum("eijc,cd->eijcd", kernels, eye)
  return jnp.stack([conv(x[i], dense[i]) for i in range(e)])


def depthwise_conv_edges(x, kernels, stride: int = 1, dilation: int = 1, impl: str = "auto",
                         input_pad: int | None = None):
  """Depthwise convolutions of E edges at once, 'same' padding.

  Args:
    x: [1 or E, B, H, W, C]; a leading 1 means all edges share the input.
    kernels: [E, k, k, C], one depthwise filter bank per edge.
    stride, dilation: spatial stride and dilation.
    impl: 'auto' (by platform), 'xla' (grouped convolution), 'masked' (dense
      convolution with a channel-diagonal kernel), 'slices' (unrolled sum of
      shifted slices) or 'loop' (the same sum as a loop over the taps).
    input_pad: 'slices' and 'loop' only: pad x by this much (at least the
      'same' padding) instead of the 'same' padding, so that several
      convolutions of one input can share one padded copy (same result).
  Returns:
    [E, B, H // stride, W // stride, C].
  """
  impl = resolve_impl(impl)
  if impl == "xla":
    return _depthwise_xla(x, kernels, stride, dilation)
  if impl == "masked":
    return _depthwise_masked(x, kernels, stride, dilation)
  y = _tap_conv(x, kernels, dilation, kernels.shape[0], impl == "slices", input_pad)
  if stride > 1:
    y = y[..., ::stride, ::stride, :]
  return y


def depthwise_conv(x, kernel, stride: int = 1, dilation: int = 1, impl: str = "auto"):
  """Depthwise convolution of one input: x [..., H, W, C], kernel [k, k, C]."""
  lead = x.shape[:-3]
  x5 = x.reshape((1, -1) + x.shape[-3:])
  y = depthwise_conv_edges(x5, kernel[None], stride, dilation, impl)[0]
  return y.reshape(lead + y.shape[1:])


def conv2d(x, kernel, stride: int = 1, dilation: int = 1, padding=None):
  """Dense convolution, NHWC x HWIO, 'same' padding unless given."""
  kh, kw = kernel.shape[:2]
  if padding is None:
    padding = ((same_padding(kh, dilation),) * 2, (same_padding(kw, dilation),) * 2)
  return lax.conv_general_dilated(
      x, kernel.astype(x.dtype), window_strides=(stride, stride), padding=padding,
      rhs_dilation=(dilation, dilation), dimension_numbers=_DIMS)

"""Convolution primitives shared by the search and evaluation networks.

Depthwise convolution is the one op whose best XLA lowering depends on the
platform. GPUs and TPUs have fast grouped-convolution kernels, so there we use
`lax.conv_general_dilated(..., feature_group_count=C)`. XLA:CPU runs grouped
convolutions on a slow generic path (measured on a 2-core CPU, 5x5 depthwise,
batch 64, 32x32x16, 4 kernels: forward 94 ms, forward+backward 7.2 s), so on
CPU the default is a dense convolution with a channel-diagonal kernel
('masked': more arithmetic, one fast op, small programs). 'slices' writes the
depthwise convolution as a sum of shifted slices, which XLA fuses into one
loop (forward 4 ms), with a hand-written VJP (backward 110 ms; JAX's own
transpose of the slice sum took 540 ms); it is fastest per op but makes the
program k*k times longer, which costs minutes of compile in a full supernet.
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

_DIMS = ("NHWC", "HWIO", "NHWC")
IMPLEMENTATIONS = ("auto", "xla", "slices", "masked")


def same_padding(kernel_size: int, dilation: int) -> int:
  return dilation * (kernel_size - 1) // 2


def resolve_impl(impl: str = "auto") -> str:
  if impl not in IMPLEMENTATIONS:
    raise ValueError(f"unknown depthwise impl {impl!r}; use one of {IMPLEMENTATIONS}")
  if impl == "auto":
    return "masked" if jax.default_backend() == "cpu" else "xla"
  return impl


def _shifted(xp, i, j, dilation, h, w):
  return xp[..., i * dilation:i * dilation + h, j * dilation:j * dilation + w, :]


def _slice_conv(x, kernels, dilation):
  """out[e] = sum_taps shift(x[e or 0]) * kernels[e, tap]; stride 1, 'same'."""
  k = kernels.shape[1]
  pad = same_padding(k, dilation)
  h, w = x.shape[-3:-1]
  xp = jnp.pad(x, [(0, 0)] * (x.ndim - 3) + [(pad, pad), (pad, pad), (0, 0)])
  kern = kernels[:, None, None, None].astype(x.dtype)  # [E, 1, 1, 1, k, k, C]
  out = 0.
  for i in range(k):
    for j in range(k):
      out = out + _shifted(xp, i, j, dilation, h, w) * kern[..., i, j, :]
  return out


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _depthwise_slices(x, kernels, dilation):
  return _slice_conv(x, kernels, dilation)


def _depthwise_slices_fwd(x, kernels, dilation):
  return _slice_conv(x, kernels, dilation), (x, kernels)


def _depthwise_slices_bwd(dilation, residuals, g):
  x, kernels = residuals
  k = kernels.shape[1]
  # The input gradient is the correlation of g with the flipped kernels.
  dx = _slice_conv(g, kernels[:, ::-1, ::-1, :], dilation)
  if x.shape[0] == 1 and kernels.shape[0] > 1:
    dx = jnp.sum(dx, axis=0, keepdims=True)
  pad = same_padding(k, dilation)
  h, w = x.shape[-3:-1]
  xp = jnp.pad(x, [(0, 0)] * (x.ndim - 3) + [(pad, pad), (pad, pad), (0, 0)])
  shared_input = x.shape[0] == 1
  taps = []
  for i in range(k):
    for j in range(k):
      xs = _shifted(xp, i, j, dilation, h, w)
      if shared_input:
        taps.append(jnp.einsum("bhwc,ebhwc->ec", xs[0], g))
      else:
        taps.append(jnp.einsum("ebhwc,ebhwc->ec", xs, g))
  dk = jnp.stack(taps, axis=1).reshape(kernels.shape).astype(kernels.dtype)
  return dx.astype(x.dtype), dk


_depthwise_slices.defvjp(_depthwise_slices_fwd, _depthwise_slices_bwd)


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


def depthwise_conv_edges(x, kernels, stride: int = 1, dilation: int = 1, impl: str = "auto"):
  """Depthwise convolutions of E edges at once, 'same' padding.

  Args:
    x: [1 or E, B, H, W, C]; a leading 1 means all edges share the input.
    kernels: [E, k, k, C], one depthwise filter bank per edge.
    stride, dilation: spatial stride and dilation.
    impl: 'auto' (by platform), 'xla' (grouped convolution) or 'slices'.
  Returns:
    [E, B, H // stride, W // stride, C].
  """
  impl = resolve_impl(impl)
  if impl == "xla":
    return _depthwise_xla(x, kernels, stride, dilation)
  if impl == "masked":
    return _depthwise_masked(x, kernels, stride, dilation)
  y = _depthwise_slices(x, kernels, dilation)
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

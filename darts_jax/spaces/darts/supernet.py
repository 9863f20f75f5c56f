"""The DARTS search network (supernet): cells of mixed operations.

Every edge is a weighted sum of the candidate ops. The op weights are an
input of the network (`edge_weights`, one [num_edges, num_ops] array per cell
type), so the architecture parameters live outside the Flax variables: the
network's variables are only `params` and `batch_stats`, and a search method
(softmax for DARTS, Gumbel sampling, ...) turns its alphas into edge weights.

Two evaluation orders of a cell's edges, the same maths (`cell_impl`):
- 'grouped': when a state is complete, all edges leaving it are computed in one
  batched call (see `darts_jax.spaces.mixed_edges`); wide programs, good for GPUs and TPUs.
- 'scan': a `lax.scan` over the edges, one edge per iteration, so XLA compiles
  one edge per cell (and stride) instead of all fourteen: the compile time of
  the step falls several fold, which is what matters on a CPU.
"""

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from darts_jax.nn import batch_norm
from darts_jax.nn import conv
from darts_jax.nn import initializers
from darts_jax.spaces.base import SupernetOptions
from darts_jax.spaces.mixed_edges import MixedEdges
from darts_jax.spaces.darts import genotype
from darts_jax.spaces.darts import ops as search_ops


CELL_IMPLEMENTATIONS = ('auto', 'grouped', 'scan')


def resolve_cell_impl(impl: str = 'auto') -> str:
  """'auto': 'scan' on CPU (compile time dominates there), 'grouped' elsewhere."""
  if impl == 'auto':
    return 'scan' if jax.default_backend() == 'cpu' else 'grouped'
  return impl


def resolve_remat(remat='auto') -> bool:
  """Whether cells recompute their activations in the backward pass (`jax.checkpoint`).

  'auto': on CPU, where it made the 8-cell search step 1.7-1.9x faster (less memory
  traffic) with 2-3x less memory (BUILD_NOTES.md); not elsewhere. Accepts a bool or
  'auto' / 'true' / 'false' (a command-line override of the config field is a string).
  """
  if isinstance(remat, str):
    value = remat.strip().lower()
    if value == 'auto':
      return jax.default_backend() == 'cpu'
    if value in ('true', 'false'):
      return value == 'true'
    raise ValueError(f"config.model.remat={remat!r}: use 'auto', 'true' or 'false'.")
  return bool(remat)


class ReLUConvBN(nn.Module):
  """ReLU, 1x1 conv, BN: the preprocessing of a cell input."""
  channels: int
  affine: bool = False

  @nn.compact
  def __call__(self, x, train: bool):
    kernel = self.param('kernel', initializers.torch_default_over(1),
                        (1, x.shape[-1], self.channels))
    y = search_ops.pointwise(nn.relu(x)[None], kernel)
    return batch_norm.BatchNorm(self.affine)(y, train)[0]


def edges_by_source(steps: int) -> list[tuple[int, list[int]]]:
  """[(source_state, [alpha rows of the edges leaving it])] in evaluation order."""
  rows = {}
  for row, (dst, src) in enumerate(genotype.edge_list(steps)):
    rows.setdefault(src, []).append(row)
  return sorted(rows.items())


class _ScannedEdge(nn.Module):
  """One iteration of a scan over edges: states[dst] += mixed_edge(source[src]).

  The source is the carried `states` themselves (`from_states`; edges are
  scanned in source order, so a state is complete before it is read) or
  `inputs`, the cell's two preprocessed inputs (strided edges of a reduction cell).
  """
  primitives: Sequence[str]
  channels: int
  stride: int
  from_states: bool
  train: bool
  depthwise_impl: str = 'auto'
  options: SupernetOptions = SupernetOptions()
  remat: bool = False
  input_by_switch: bool = False  # See SearchNetwork.strided_input_by_switch.

  @nn.compact
  def __call__(self, states, edge, inputs):
    src, dst, weights = edge
    if self.from_states or not self.input_by_switch:
      x = jax.lax.dynamic_index_in_dim(states if self.from_states else inputs, src,
                                       keepdims=False)
    else:
      x = jax.lax.switch(src, [lambda j=j: inputs[j] for j in range(inputs.shape[0])])
    config = (tuple(self.primitives), self.channels, self.stride, self.depthwise_impl,
              self.options)
    if self.is_initializing():
      out = _edge_module(config, name='edge')(x, weights[None], self.train)
    else:
      variables = {k: v['edge'] for k, v in self.variables.items() if 'edge' in v}
      out, batch_stats = _edge_program(config, self.train, self.remat)(variables, x,
                                                                        weights[None])
      if batch_stats and self.train and self.is_mutable_collection('batch_stats'):
        self.put_variable('batch_stats', 'edge', batch_stats)
    out = out[0]
    total = jax.lax.dynamic_index_in_dim(states, dst, keepdims=False) + out.astype(states.dtype)
    return jax.lax.dynamic_update_index_in_dim(states, total, dst, 0), None


def _edge_module(config, name=None) -> MixedEdges:
  """The single-edge MixedEdges of `config` (see _ScannedEdge)."""
  primitives, channels, stride, depthwise_impl, options = config
  return MixedEdges(primitives, channels, stride, 1, depthwise_impl, options, name=name)


@functools.lru_cache(maxsize=None)
def _edge_program(config, train: bool, remat: bool):
  """One edge as a jitted pure function, one per edge configuration.

  Every scan over same-shape edges (the normal cells of a stage, the reduction
  cells' node edges, the weight and the alpha pass) calls this same function,
  so JAX traces it once per input shape and differentiates it once per shape and
  set of differentiated inputs, not once per scan.
  With `remat` the backward pass recomputes the edge's activations; inside the
  jit, so the recompute rule is also derived once per shape.
  """
  edge = _edge_module(config)

  def mixed_edge(variables, x, weights):
    if not train:
      return edge.apply(variables, x, weights, False), variables.get('batch_stats', {})
    out, updates = edge.apply(variables, x, weights, True, mutable=['batch_stats'])
    return out, updates.get('batch_stats', {})

  return jax.jit(jax.checkpoint(mixed_edge, prevent_cse=False) if remat else mixed_edge)


def _scan_edges(cell, name, rows, states, inputs, weights, stride, train, src_offset=0,
                dst_offset=0):
  """Adds the edges `rows` (alpha rows, in evaluation order) into `states`.

  An edge (node i <- state j) reads `states[j - src_offset]` (or `inputs[j]`
  when `inputs` is given) and adds to `states[i + dst_offset]`.
  """
  edges = genotype.edge_list(cell.steps)
  src = np.array([edges[r][1] - src_offset for r in rows], np.int32)
  dst = np.array([edges[r][0] + dst_offset for r in rows], np.int32)
  scan = nn.scan(_ScannedEdge, variable_axes={'params': 0, 'batch_stats': 0},
                 split_rngs={'params': True}, in_axes=(0, nn.broadcast), length=len(rows))
  body = scan(cell.primitives, cell.channels, stride, inputs is None, train,
              cell.depthwise_impl, options=cell.options, remat=cell.remat,
              input_by_switch=cell.strided_input_by_switch, name=name)
  states, _ = body(states, (jnp.asarray(src), jnp.asarray(dst),
                            weights[jnp.asarray(np.array(rows))]), inputs)
  return states


class SearchCell(nn.Module):
  """A normal or reduction cell of the supernet."""
  primitives: Sequence[str]
  channels: int
  reduction: bool
  reduction_prev: bool
  steps: int = 4
  multiplier: int = 4
  depthwise_impl: str = 'auto'
  options: SupernetOptions = SupernetOptions()  # See MixedEdges.
  cell_impl: str = 'grouped'  # Or 'scan'; see the module docstring.
  remat: bool = False  # Recompute in the backward pass: each edge ('scan'), see SearchNetwork.
  strided_input_by_switch: bool = False  # See SearchNetwork.

  @nn.compact
  def __call__(self, s0, s1, weights, train: bool):
    c = self.channels
    if self.reduction_prev:
      s0 = search_ops.FactorizedReduce(c, name='preprocess0')(s0, train)[0]
    else:
      s0 = ReLUConvBN(c, name='preprocess0')(s0, train)
    s1 = ReLUConvBN(c, name='preprocess1')(s1, train)
    if self.cell_impl == 'scan':
      return self._scanned(s0, s1, weights, train)
    states = [s0, s1]
    partial = [0.] * self.steps
    for src, rows in edges_by_source(self.steps):
      if src >= 2:
        states.append(partial[src - 2])
      stride = 2 if self.reduction and src < 2 else 1
      out = MixedEdges(self.primitives, c, stride, len(rows), self.depthwise_impl,
                       self.options, name=f'edges_from_{src}')(states[src], weights[jnp.array(rows)], train)
      for e, row in enumerate(rows):
        dst = genotype.edge_list(self.steps)[row][0]
        partial[dst] = partial[dst] + out[e]
    states.extend(partial[len(states) - 2:])
    return jnp.concatenate(states[-self.multiplier:], axis=-1)

  def _scanned(self, s0, s1, weights, train):
    """A normal cell is one scan over its edges (states: inputs, then nodes); a
    reduction cell two: the strided edges from the inputs, then those between nodes."""
    rows = [r for _, rs in edges_by_source(self.steps) for r in rs]
    if not self.reduction:
      states = jnp.concatenate([jnp.stack([s0, s1]),
                                jnp.zeros((self.steps,) + s1.shape, s1.dtype)])
      states = _scan_edges(self, 'edges', rows, states, None, weights, 1, train, dst_offset=2)
      return jnp.concatenate(list(states[-self.multiplier:]), axis=-1)
    b, h, w, c = s1.shape
    nodes = jnp.zeros((self.steps, b, -(-h // 2), -(-w // 2), c), s1.dtype)
    from_inputs = rows[:2 * self.steps]  # Sorted by source: states 0 and 1 first.
    nodes = _scan_edges(self, 'edges_from_inputs', from_inputs, nodes, jnp.stack([s0, s1]),
                        weights, 2, train)
    if rows[2 * self.steps:]:
      nodes = _scan_edges(self, 'edges_from_nodes', rows[2 * self.steps:], nodes, None,
                          weights, 1, train, src_offset=2)
    return jnp.concatenate(list(nodes[-self.multiplier:]), axis=-1)


class SearchNetwork(nn.Module):
  """Stem, `layers` search cells (reductions at 1/3 and 2/3 depth), pool, linear."""
  primitives: Sequence[str]
  num_classes: int
  init_channels: int = 16
  layers: int = 8
  steps: int = 4
  multiplier: int = 4
  stem_multiplier: int = 3
  depthwise_impl: str = 'auto'
  options: SupernetOptions = SupernetOptions()  # See MixedEdges.
  cell_impl: str = 'grouped'  # See SearchCell.
  remat: bool = False  # Recompute activations in the backward pass: per edge for 'scan'
                       # cells, per cell for 'grouped' ones.
  # 'scan' reduction cells: the strided edges read their input by `lax.switch`
  # instead of a dynamic index. The transpose of a dynamic index is a
  # dynamic-update-slice into the inputs' cotangent, and in the exact step's
  # forward-over-reverse product XLA:CPU fuses the edge's whole input gradient
  # into it, a loop it runs on one core ~5x slower; a conditional is a fusion
  # boundary. It costs the other passes a few % (an extra copy and cotangent), so
  # only the exact second-order search turns it on (docs/history.md, "The input
  # gradient of the strided edges: a one-core loop").
  strided_input_by_switch: bool = False
  stem: str = 'cifar'  # Or 'imagenet': see `_stems`.

  @nn.compact
  def __call__(self, x, edge_weights, train: bool):
    """x: [B, H, W, C_img]; edge_weights: {'normal', 'reduce'}: [num_edges, num_ops]."""
    s0, s1 = self._stems(x, train)
    c = self.init_channels
    reduction_prev = self.stem == 'imagenet'  # s0 has twice s1's resolution.
    cell_cls = SearchCell
    if self.remat and self.cell_impl != 'scan':
      cell_cls = nn.remat(SearchCell, static_argnums=(4,))  # `train` (self is argument 0).
    for i in range(self.layers):
      reduction = i in reduction_layers(self.layers)
      if reduction:
        c *= 2
      cell = cell_cls(self.primitives, c, reduction, reduction_prev, self.steps,
                        self.multiplier, self.depthwise_impl,
                        options=self.options, cell_impl=self.cell_impl,
                        remat=self.remat,
                        strided_input_by_switch=self.strided_input_by_switch,
                        name=f'cell_{i}')
      s0, s1 = s1, cell(s0, s1, edge_weights['reduce' if reduction else 'normal'], train)
      reduction_prev = reduction
    y = jnp.mean(s1, axis=(1, 2))
    return nn.Dense(self.num_classes, kernel_init=initializers.torch_default,
                    bias_init=initializers.torch_bias(y.shape[-1]), name='classifier')(y)

  @nn.nowrap
  def _stems(self, x, train: bool):
    """(s0, s1) for the first cell.

    'cifar': one 3x3 conv + BN, both inputs. 'imagenet' (PC-DARTS's search on
    ImageNet, model_search_imagenet.py): stem0 = 3x3 stride-2 conv to half the
    channels, BN, ReLU, 3x3 stride-2 conv, BN (1/4 resolution); stem1 = ReLU,
    3x3 stride-2 conv, BN (1/8).
    """
    if self.stem not in STEMS:
      raise ValueError(f'unknown stem {self.stem!r}; use one of {STEMS}')
    c = self.stem_multiplier * self.init_channels

    def conv_bn(y, channels, stride, name):
      kernel = self.param(f'{name}_conv', initializers.torch_default,
                          (3, 3, y.shape[-1], channels))
      y = conv.conv2d(y, kernel, stride)
      return batch_norm.BatchNorm(affine=True, name=f'{name}_bn')(y[None], train)[0]

    if self.stem == 'cifar':
      s = conv_bn(x, c, 1, 'stem')
      return s, s
    s0 = conv_bn(nn.relu(conv_bn(x, c // 2, 2, 'stem0_a')), c, 2, 'stem0_b')
    return s0, conv_bn(nn.relu(s0), c, 2, 'stem1')


STEMS = ('cifar', 'imagenet')


def stem_strides(stem: str) -> int:
  """How many stride-2 convolutions the stem applies before the first cell."""
  return 3 if stem == 'imagenet' else 0


def reduction_layers(layers: int) -> tuple[int, ...]:
  """The reference puts reductions at layers//3 and 2*layers//3; tiny nets get one, last."""
  if layers >= 3:
    return (layers // 3, 2 * layers // 3)
  return (layers - 1,)

"""The search network: parameter count, edge batching, op registry, depthwise lowerings."""

import functools

import flax.linen as nn
import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
import pytest

from darts_jax.nn import conv
from darts_jax.nn import initializers
from darts_jax.spaces import mixed_edges
from darts_jax.spaces.darts import genotype as genotypes
from darts_jax.spaces.darts import ops as darts_ops
from darts_jax.spaces.darts import supernet
from darts_jax.errors import UserError


def _host_init(module, seed, *args, **kwargs):
  """`module.init` with the weights drawn on the host (nothing compiled)."""
  return initializers.host_init(lambda k: module.init(k, *args, **kwargs),
                                jax.random.key(seed), seed)


def _uniform_weights(num_ops):
  w = jnp.full((14, num_ops), 1.0 / num_ops)
  return {'normal': w, 'reduce': w}


@pytest.mark.parametrize('cell_impl', ['grouped', 'scan'])
def test_param_count_matches_reference(cell_impl):
  # The PyTorch reference (8 cells, C=16, 10 classes) has 1,930,618 weights
  # (alphas excluded); shapes only, nothing is compiled.
  net = supernet.SearchNetwork(genotypes.PRIMITIVES, num_classes=10, cell_impl=cell_impl)
  shapes = jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros((2, 32, 32, 3)),
                                           _uniform_weights(8), train=True))
  count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes['params']))
  assert count == 1_930_618
  assert 'batch_stats' in shapes


def test_edges_by_source_covers_every_edge_once():
  groups = supernet.edges_by_source(4)
  rows = sorted(r for _, rs in groups for r in rs)
  assert rows == list(range(14))
  assert [src for src, _ in groups] == [0, 1, 2, 3, 4]
  assert [len(rs) for _, rs in groups] == [4, 4, 3, 2, 1]


@pytest.mark.parametrize('stride', [1, 2])
def test_batched_edges_equal_separate_edges(stride):
  """E edges computed at once equal each edge computed alone with its own weights."""
  prims = ('none', 'avg_pool_3x3', 'skip_connect', 'sep_conv_3x3', 'dil_conv_3x3')
  x = jax.random.normal(jax.random.key(1), (2, 8, 8, 4))
  weights = jax.nn.softmax(jax.random.normal(jax.random.key(2), (3, len(prims))), -1)
  batched = mixed_edges.MixedEdges(prims, 4, stride, 3)
  variables = _host_init(batched, 3, x, weights, train=True)
  single = mixed_edges.MixedEdges(prims, 4, stride, 1)

  @jax.jit
  def batched_and_single_outputs(variables):
    out, _ = batched.apply(variables, x, weights, train=True, mutable=['batch_stats'])
    singles = [single.apply(jax.tree.map(lambda a, e=e: a[e:e + 1], variables), x,
                            weights[e:e + 1], train=True, mutable=['batch_stats'])[0][0]
               for e in range(3)]
    return out, singles

  out, singles = batched_and_single_outputs(variables)
  for e in range(3):
    np.testing.assert_allclose(singles[e], out[e], rtol=1e-5, atol=1e-5)


def test_mixed_edges_are_the_weighted_sum_of_known_ops():
  """Against ops whose output is known: identity, zero, and a weight on each."""
  prims = ('none', 'skip_connect', 'avg_pool_3x3')
  x = jax.random.normal(jax.random.key(4), (2, 6, 6, 3))
  edges = mixed_edges.MixedEdges(prims, 3, 1, 3)
  weights = jnp.array([[0.0, 1.0, 0.0],    # skip only: x
                       [0.7, 0.3, 0.0],    # 0.7 * zero + 0.3 * x
                       [0.0, 0.25, 0.75]])  # 0.25 * x + 0.75 * BN(avg_pool(x))
  variables = _host_init(edges, 5, x, weights, train=True)
  out, _ = jax.jit(lambda v: edges.apply(v, x, weights, train=True, mutable=['batch_stats']))(
      variables)
  np.testing.assert_allclose(out[0], x, rtol=1e-6)
  np.testing.assert_allclose(out[1], 0.3 * x, rtol=1e-6)
  # The pool (count_include_pad=False) then a batch norm without affine, by numpy.
  xn = np.asarray(x, np.float64)
  padded = np.pad(xn, ((0, 0), (1, 1), (1, 1), (0, 0)))
  ones = np.pad(np.ones_like(xn), ((0, 0), (1, 1), (1, 1), (0, 0)))
  window = lambda a: sum(a[:, i:i + 6, j:j + 6] for i in range(3) for j in range(3))
  pooled = window(padded) / window(ones)
  mean, var = pooled.mean((0, 1, 2)), pooled.var((0, 1, 2))
  normed = (pooled - mean) / np.sqrt(var + 1e-5)
  np.testing.assert_allclose(out[2], 0.25 * xn + 0.75 * normed, rtol=1e-4, atol=1e-5)


def test_conv_ops_of_an_edge_pad_its_input_alike():
  """The first depthwise convolution of every conv op pads the edge input by one amount
  (so XLA pads it once); the sep convs' second convolutions keep their own padding."""
  prims = ('sep_conv_3x3', 'sep_conv_5x5', 'dil_conv_3x3', 'dil_conv_5x5')
  x = jax.random.normal(jax.random.key(1), (2, 8, 8, 4))
  weights = jnp.full((1, len(prims)), 0.25)
  edge = mixed_edges.MixedEdges(prims, 4, 1, 1, 'slices')
  variables = _host_init(edge, 3, x, weights, train=False)
  jaxpr = jax.make_jaxpr(lambda x: edge.apply(variables, x, weights, train=False))(x)

  def conv_pads(jaxpr):
    for eqn in jaxpr.eqns:
      if eqn.primitive.name == 'darts_depthwise_conv':
        yield eqn.params['pad']
      for param in eqn.params.values():
        if isinstance(param, jax.extend.core.ClosedJaxpr):
          yield from conv_pads(param.jaxpr)
        elif isinstance(param, jax.extend.core.Jaxpr):
          yield from conv_pads(param)

  pads = list(conv_pads(jaxpr.jaxpr))
  assert sorted(pads, key=str) == [darts_ops.EDGE_INPUT_PAD] * 4 + [None] * 2


def test_search_network_subset_of_ops_runs():
  prims = ('max_pool_3x3', 'skip_connect', 'sep_conv_3x3')
  net = supernet.SearchNetwork(prims, num_classes=5, init_channels=4, layers=2)
  x = jnp.ones((2, 8, 8, 1))
  weights = _uniform_weights(3)
  variables = _host_init(net, 0, x, weights, train=True)
  logits, eval_logits = jax.jit(lambda v: (
      net.apply(v, x, weights, train=True, mutable=['batch_stats'])[0],
      net.apply(v, x, weights, train=False)))(variables)
  assert logits.shape == (2, 5)
  assert bool(jnp.all(jnp.isfinite(logits)))
  assert eval_logits.shape == (2, 5)
  assert bool(jnp.all(jnp.isfinite(eval_logits)))


def test_unknown_op_is_a_user_error():
  with pytest.raises(UserError, match='unknown search op'):
    mixed_edges.check_primitives(['sep_conv_3x3', 'conv_9x9'])


def test_registered_per_edge_op_is_searchable():
  class Scale(nn.Module):
    channels: int
    stride: int

    @nn.compact
    def __call__(self, x, train):
      s = self.param('s', nn.initializers.ones, (self.channels,))
      return x[:, ::self.stride, ::self.stride] * s

  mixed_edges.register_search_op('scale', mixed_edges.per_edge(Scale))
  try:
    prims = mixed_edges.check_primitives(['skip_connect', 'scale'])
    edges = mixed_edges.MixedEdges(prims, 4, 1, 3)
    x = jnp.ones((1, 4, 4, 4))
    w = jnp.full((3, 2), 0.5)
    variables = edges.init(jax.random.key(0), x, w, train=True)
    assert [leaf.shape for leaf in jax.tree.leaves(variables['params'])] == [(3, 4)]
    out = edges.apply(variables, x, w, train=True)
    np.testing.assert_allclose(out, jnp.ones((3, 1, 4, 4, 4)), rtol=1e-6)
  finally:
    del mixed_edges.SEARCH_OPS['scale']


@pytest.mark.parametrize('shared,k,dilation,stride', [(True, 3, 1, 1), (False, 5, 2, 1),
                                                      (True, 3, 2, 2), (False, 3, 1, 2)])
def test_depthwise_lowerings_agree(shared, k, dilation, stride):
  """The CPU lowerings ('slices', 'masked', 'loop') match XLA's grouped convolution, with gradients."""
  e, c = 3, 4
  x = jax.random.normal(jax.random.key(0), (1 if shared else e, 2, 9, 9, c))
  w = jax.random.normal(jax.random.key(1), (e, k, k, c))

  def loss(impl):
    return lambda x, w: jnp.sum(jnp.sin(conv.depthwise_conv_edges(x, w, stride, dilation, impl)))

  ref_val, ref_grads = jax.jit(jax.value_and_grad(loss('xla'), (0, 1)))(x, w)
  for impl in ('slices', 'masked', 'loop'):
    val, grads = jax.jit(jax.value_and_grad(loss(impl), (0, 1)))(x, w)
    np.testing.assert_allclose(val, ref_val, rtol=1e-4)
    for g, r in zip(grads, ref_grads):
      np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4)


def _grouped_to_scanned(grouped: dict, steps: int, reduction: bool) -> dict:
  """Re-stacks a 'grouped' cell's per-source variables into the 'scan' layout."""
  position = {r: (src, e) for src, rows in supernet.edges_by_source(steps)
              for e, r in enumerate(rows)}
  rows = [r for _, rs in supernet.edges_by_source(steps) for r in rs]
  scans = ({'edges_from_inputs': rows[:2 * steps], 'edges_from_nodes': rows[2 * steps:]}
           if reduction else {'edges': rows})
  out = {k: v for k, v in grouped.items() if not k.startswith('edges_from_')}
  for name, scan_rows in scans.items():
    # Parameter-free ops (pools) keep one set of BN statistics per source state.
    per_row = [jax.tree.map(lambda a, e=position[r][1]: a[e:e + 1] if a.shape[0] > 1 else a,
                            grouped[f'edges_from_{position[r][0]}']) for r in scan_rows]
    out[name] = {'edge': jax.tree.map(lambda *a: jnp.stack(a), *per_row)}
  return out


def _images_and_edge_weights(steps, num_ops):
  """A batch of two 8x8 RGB images and softmaxed edge weights for a `steps`-node cell."""
  num_edges = len(genotypes.edge_list(steps))
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  weights = {k: jax.nn.softmax(jax.random.normal(jax.random.key(i), (num_edges, num_ops)), -1)
             for i, k in enumerate(('normal', 'reduce'))}
  return x, weights


@pytest.mark.parametrize('remat', [False, True])
def test_scanned_cells_equal_grouped_cells(remat):
  """cell_impl='scan' (one edge per scan step) == 'grouped', with or without remat."""
  prims = ('none', 'avg_pool_3x3', 'skip_connect', 'dil_conv_3x3')
  steps = 2
  x, weights = _images_and_edge_weights(steps, len(prims))
  make = lambda impl: supernet.SearchNetwork(prims, num_classes=5, init_channels=4, layers=2,
                                             steps=steps, multiplier=steps, cell_impl=impl,
                                             remat=remat)
  grouped_net, scanned_net = make('grouped'), make('scan')
  grouped_vars = _host_init(grouped_net, 1, x, weights, train=True)
  reductions = supernet.reduction_layers(2)
  to_scan = lambda tree: {
      k: _grouped_to_scanned(v, steps, int(k[5:]) in reductions) if k.startswith('cell_') else v
      for k, v in tree.items()}
  scanned_vars = {c: to_scan(v) for c, v in grouped_vars.items()}
  assert (jax.tree.map(jnp.shape, scanned_vars)
          == jax.tree.map(jnp.shape, jax.eval_shape(functools.partial(scanned_net.init, train=True),
                                                    jax.random.key(1), x, weights)))

  def loss(net, variables, w):
    logits, new_state = net.apply(variables, x, w, train=True, mutable=['batch_stats'])
    return jnp.sum(jnp.sin(logits)), new_state

  grad = lambda net, v: jax.jit(jax.grad(functools.partial(loss, net), argnums=(0, 1),
                                         has_aux=True))(v, weights)
  (g_vars, g_w), g_state = grad(grouped_net, grouped_vars)
  (s_vars, s_w), s_state = grad(scanned_net, scanned_vars)
  close = lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-5)
  jax.tree.map(close, to_scan(g_vars['params']), s_vars['params'])
  jax.tree.map(close, to_scan(g_state['batch_stats']), s_state['batch_stats'])
  jax.tree.map(close, g_w, s_w)



@pytest.mark.slow
def test_strided_input_by_switch_is_the_same_maths():
  """Reduction cells reading their inputs by lax.switch give the same loss, alpha
  gradient and forward-over-reverse product (the exact hypergradient's) as by index."""
  prims = ('none', 'max_pool_3x3', 'skip_connect', 'dil_conv_3x3')
  steps = 2
  x, w = _images_and_edge_weights(steps, len(prims))
  make = lambda switch: supernet.SearchNetwork(
      prims, num_classes=5, init_channels=4, layers=2, steps=steps, multiplier=steps,
      cell_impl='scan', remat=True, strided_input_by_switch=switch)
  variables = _host_init(make(False), 1, x, w, train=True)
  params, stats = variables['params'], variables['batch_stats']
  direction = jax.tree.map(lambda p: jnp.cos(jnp.arange(p.size, dtype=p.dtype)).reshape(p.shape),
                           params)

  def loss(net, p, weights):
    logits, _ = net.apply({'params': p, 'batch_stats': stats}, x, weights, train=True,
                          mutable=['batch_stats'])
    return jnp.sum(jnp.sin(logits))

  def results(net):
    alpha_grad = lambda p: jax.grad(functools.partial(loss, net, p))(w)
    product = jax.jvp(alpha_grad, (params,), (direction,))[1]
    return loss(net, params, w), alpha_grad(params), product

  assert 'cond' in str(jax.make_jaxpr(functools.partial(loss, make(True)))(params, w))
  assert 'cond' not in str(jax.make_jaxpr(functools.partial(loss, make(False)))(params, w))
  by_index = jax.jit(lambda: results(make(False)))()
  by_switch = jax.jit(lambda: results(make(True)))()
  close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  jax.tree.map(close, by_index, by_switch)


def _edge_programs(jaxpr, found):
  """Appends the jaxpr of every jitted edge call (`_edge_program`) nested in `jaxpr`.

  Calls without inputs are skipped: unused copies left by Flax's shape pass over a
  scan body (dead code, removed when lowered).
  """
  for eqn in jaxpr.eqns:
    if (eqn.primitive.name in ('pjit', 'jit') and eqn.params.get('name') == 'mixed_edge'
        and eqn.invars):
      found.append(eqn.params['jaxpr'])
    for value in eqn.params.values():
      for sub in value if isinstance(value, (tuple, list)) else (value,):
        sub = getattr(sub, 'jaxpr', sub)
        if hasattr(sub, 'eqns'):
          _edge_programs(sub, found)
  return found


def test_scanned_edges_of_one_shape_share_one_traced_program():
  """Same-shape scans call one traced edge function (what keeps the CPU compile short)."""
  prims = ('max_pool_3x3', 'skip_connect', 'sep_conv_3x3')
  x = jnp.zeros((2, 8, 8, 3))
  w = jnp.full((14, 3), 1 / 3)
  net = supernet.SearchNetwork(prims, num_classes=5, init_channels=4, layers=5,
                               cell_impl='scan', remat=True)
  variables = jax.eval_shape(functools.partial(net.init, train=True), jax.random.key(0), x,
                             {'normal': w, 'reduce': w})
  apply = lambda v: net.apply(v, x, {'normal': w, 'reduce': w}, train=True,
                              mutable=['batch_stats'])
  programs = _edge_programs(jax.make_jaxpr(apply)(variables).jaxpr, [])
  # 3 normal cells (one scan each), 2 reduction cells (two scans each): 7 scans over
  # 5 edge shapes (stride 1 at 8x8x4, 4x4x8 and 2x2x16; stride 2 from 8x8x8 and 4x4x16).
  assert len(programs) == 7
  assert len({id(p) for p in programs}) == 5


def test_resolve_remat_reads_bools_and_command_line_strings():
  assert supernet.resolve_remat(True) and not supernet.resolve_remat(False)
  assert supernet.resolve_remat('True') and not supernet.resolve_remat('false')
  assert supernet.resolve_remat('auto') == (jax.default_backend() == 'cpu')
  with pytest.raises(ValueError, match="use 'auto', 'true' or 'false'"):
    supernet.resolve_remat('sometimes')

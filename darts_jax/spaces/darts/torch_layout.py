"""The DARTS code's PyTorch state-dict layout (`cnn/model.py`) and this evaluation network's.

Layouts: convolutions OIHW -> HWIO, depthwise [C, 1, k, k] -> [k, k, C], linear
[out, in] -> [in, out]; BN weight, bias, running_mean, running_var -> scale, bias,
mean, var (`num_batches_tracked` is dropped). The module names follow the DARTS code
(`cells.{i}._ops.{j}.op.{k}`, `preprocess0.conv_1`, `auxiliary_head.features.{k}`).
Reading a `.pt` file needs PyTorch; an `.npz` of the state dict does not.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from darts_jax.errors import UserError
from darts_jax.spaces.darts import eval_network
from darts_jax.spaces.darts.genotype import Genotype

_RELU_CONV_BN = {'Conv_0': 'op.1', 'BatchNorm_0': 'op.2'}
_FACTORIZED_REDUCE = {'Conv_0': 'conv_1', 'Conv_1': 'conv_2', 'BatchNorm_0': 'bn'}
_DIL_CONV = {'DepthwiseConv_0': 'op.1', 'Conv_0': 'op.2', 'BatchNorm_0': 'op.3'}
_SEP_CONV = {'DilConv_0/DepthwiseConv_0': 'op.1', 'DilConv_0/Conv_0': 'op.2',
             'DilConv_0/BatchNorm_0': 'op.3', 'DilConv_1/DepthwiseConv_0': 'op.5',
             'DilConv_1/Conv_0': 'op.6', 'DilConv_1/BatchNorm_0': 'op.7'}
_CONV_7X1_1X7 = {'Conv_0': 'op.1', 'Conv_1': 'op.2', 'BatchNorm_0': 'op.3'}
_WEIGHTLESS_OPS = ('none', 'avg_pool_3x3', 'max_pool_3x3')
_STEMS = {
    'cifar': {'stem_conv': 'stem.0', 'stem_bn': 'stem.1'},
    'imagenet': {'stem0_conv0': 'stem0.0', 'stem0_bn0': 'stem0.1', 'stem0_conv1': 'stem0.3',
                 'stem0_bn1': 'stem0.4', 'stem1/Conv_0': 'stem1.1',
                 'stem1/BatchNorm_0': 'stem1.2'},
}
_AUXILIARY_HEADS = {
    'cifar': {'Conv_0': 'features.2', 'BatchNorm_0': 'features.3', 'Conv_1': 'features.5',
              'BatchNorm_1': 'features.6', 'Dense_0': 'classifier'},
    'imagenet': {'Conv_0': 'features.2', 'BatchNorm_0': 'features.3', 'Conv_1': 'features.5',
                 'Dense_0': 'classifier'},
}
_IGNORED_SUFFIX = '.num_batches_tracked'


def _op_modules(op: str, stride: int) -> dict[str, str]:
  if op in _WEIGHTLESS_OPS or (op == 'skip_connect' and stride == 1):
    return {}
  if op == 'skip_connect':
    return _FACTORIZED_REDUCE
  if op == 'conv_7x1_1x7':
    return _CONV_7X1_1X7
  if op.startswith('sep_conv_'):
    return _SEP_CONV
  if op.startswith('dil_conv_'):
    return _DIL_CONV
  raise UserError(f'op {op!r} has no PyTorch layout in darts_jax.torch_weights; only the '
                  'DARTS ops convert')


def module_names(network: str, genotype: Genotype, layers: int, auxiliary: bool
                 ) -> dict[str, str]:
  """{flax module path ('cells_0/ops_1/DilConv_0/Conv_0'): the DARTS code's module name
  ('cells.0._ops.1.op.2')} for the evaluation network."""
  names = dict(_STEMS[network], classifier='classifier')
  if auxiliary:
    names.update({f'auxiliary_head/{k}': f'auxiliary_head.{v}'
                  for k, v in _AUXILIARY_HEADS[network].items()})

  def add(flax_prefix, torch_prefix, modules):
    names.update({f'{flax_prefix}/{k}': f'{torch_prefix}.{v}' for k, v in modules.items()})

  reductions = eval_network.reduction_layers(layers)
  reduction_prev = network == 'imagenet'
  for i in range(layers):
    reduction = i in reductions
    add(f'cells_{i}/preprocess0', f'cells.{i}.preprocess0',
        _FACTORIZED_REDUCE if reduction_prev else _RELU_CONV_BN)
    add(f'cells_{i}/preprocess1', f'cells.{i}.preprocess1', _RELU_CONV_BN)
    for j, (op, index) in enumerate(genotype.reduce if reduction else genotype.normal):
      add(f'cells_{i}/ops_{j}', f'cells.{i}._ops.{j}',
          _op_modules(op, 2 if reduction and index < 2 else 1))
    reduction_prev = reduction
  return names


def _torch_leaf(collection: str, leaf: str, ndim: int) -> tuple[str, Any]:
  """(state-dict suffix, PyTorch array -> this layout) of one variable."""
  if collection == 'batch_stats':
    return {'mean': 'running_mean', 'var': 'running_var'}[leaf], lambda a: a
  if leaf == 'scale':
    return 'weight', lambda a: a
  if leaf == 'bias':
    return 'bias', lambda a: a
  layouts = {4: lambda a: a.transpose(2, 3, 1, 0),  # OIHW -> HWIO
             3: lambda a: a[:, 0].transpose(1, 2, 0),  # depthwise [C, 1, k, k] -> [k, k, C]
             2: lambda a: a.T}  # linear [out, in] -> [in, out]
  return 'weight', layouts[ndim]


def convert(state_dict: Mapping[str, np.ndarray], variables_shape: Any,
            names: Mapping[str, str]) -> dict:
  """The variables (shaped as `variables_shape`, e.g. from `jax.eval_shape` of init)
  filled from `state_dict`; UserError on a missing, extra or misshapen tensor."""
  used, flat = set(), {}
  for path, shape in traverse_util.flatten_dict(variables_shape, sep='/').items():
    collection, *module, leaf = path.split('/')
    module = '/'.join(module)
    suffix, to_layout = _torch_leaf(collection, leaf, len(shape.shape))
    key = f'{names[module]}.{suffix}'
    if key not in state_dict:
      raise UserError(f'the weights have no {key!r} (for {path}, shape {shape.shape}): are '
                      'they a DARTS evaluation network of this genotype, '
                      'config.model.init_channels and config.model.layers?')
    value = to_layout(np.asarray(state_dict[key], np.float32))
    if value.shape != tuple(shape.shape):
      raise UserError(f'{key!r} has shape {np.shape(state_dict[key])}, {path} needs '
                      f'{tuple(shape.shape)} after the layout change: check the genotype, '
                      'config.model.init_channels and config.model.layers')
    used.add(key)
    flat[path] = value
  # Weights of an auxiliary head that this network does not build are not needed.
  has_head = any(module.startswith('auxiliary_head/') for module in names)
  extra = sorted(k for k in state_dict if k not in used and not k.endswith(_IGNORED_SUFFIX)
                 and (has_head or not k.startswith('auxiliary_head.')))
  if extra:
    raise UserError(f'{len(extra)} tensors of the weights have no place in this network, '
                    f'e.g. {extra[:3]}: check the genotype and config.model.network')
  return traverse_util.unflatten_dict(flat, sep='/')


def read_state_dict(path: str) -> dict[str, np.ndarray]:
  """A state dict from an .npz, or from a PyTorch file (needs torch); a checkpoint
  dict's 'state_dict' entry and DataParallel's 'module.' prefixes are unwrapped."""
  if not os.path.isfile(path):
    raise UserError(f'weights file {path} not found; pass --weights=<a .pt or .npz file>')
  if path.endswith('.npz'):
    with np.load(path) as archive:
      state = {k: archive[k] for k in archive.files}
  else:
    try:
      import torch  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise UserError(f'reading {path} needs PyTorch: pip install torch (a CPU build is '
                      'enough), or save the state dict as .npz elsewhere') from None
    try:
      loaded = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # pylint: disable=broad-except
      raise UserError(f'cannot read {path} as a PyTorch state dict ({type(e).__name__}: '
                      f'{str(e).splitlines()[0][:200]})') from None
    if isinstance(loaded, Mapping) and isinstance(loaded.get('state_dict'), Mapping):
      loaded = loaded['state_dict']
    if not isinstance(loaded, Mapping):
      raise UserError(f'{path} holds a {type(loaded).__name__}, not a state dict')
    state = {k: v.detach().cpu().numpy() for k, v in loaded.items() if hasattr(v, 'detach')}
  return {k.removeprefix('module.'): v for k, v in state.items()}


def import_weights(model_config, genotype: Genotype | str, num_classes: int,
                   image_shape: Sequence[int], state_dict: Mapping[str, np.ndarray]):
  """(model, variables): the evaluation network of `model_config` with PyTorch weights."""
  model = eval_network.build_augment_model(model_config, genotype, num_classes)
  x = jax.ShapeDtypeStruct((1,) + tuple(image_shape), jnp.float32)
  shapes = jax.eval_shape(lambda k, x: model.init(k, x, train=False), jax.random.key(0), x)
  names = module_names(model_config.network, model.genotype, model.layers, model.auxiliary)
  return model, convert(state_dict, shapes, names)

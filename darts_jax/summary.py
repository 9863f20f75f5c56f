"""Parameter and multiply-add counts of an evaluation network, and a CLI.

  python -m darts_jax.summary --config=experiments/augment_cifar10.py \
      [--genotype=DARTS_V2] [--image_size=32] [--num_classes=10]

prints one JSON line: genotype, network, params, params_millions, macs,
macs_millions, input_shape. Nothing is compiled: shapes come from
`jax.eval_shape`, so even the full ImageNet network takes seconds.
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

from absl import flags
import flax.linen as nn
import jax
import jax.numpy as jnp
from ml_collections import config_flags

from darts_jax import cli
from darts_jax import data
from darts_jax.errors import UserError
from darts_jax.nn import params as params_lib
from darts_jax.spaces.darts import eval_network
from darts_jax.spaces.darts import eval_ops

_AUX_PREFIX = params_lib.AUXILIARY_PREFIX



def _abstract_variables(model: nn.Module, input_shape: Sequence[int]) -> Any:
  x = jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32)
  return jax.eval_shape(lambda k, x: model.init(k, x, train=False),
                        jax.random.key(0), x)


def count_params(model: nn.Module, input_shape: Sequence[int]) -> int:
  """Trainable weights of `model` without its auxiliary head (shapes only).

  BN running statistics are not weights. `input_shape` is NHWC, e.g. (1, 32, 32, 3).
  """
  return params_lib.count_weights(_abstract_variables(model, input_shape)['params'])


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
        and not any(str(n).startswith(_AUX_PREFIX) for n in module.path)):
      total += _layer_macs(module, args[0], out)
    return out

  with nn.intercept_methods(interceptor):
    _abstract_variables(model, input_shape)
  return total


def summarize(config: Any, genotype_spec: str | None = None,
              image_size: int | None = None,
              num_classes: int | None = None) -> dict[str, Any]:
  """The summary dict the CLI prints, for an augment config."""
  spec = genotype_spec or config.get('genotype')
  if not spec:
    raise UserError('no genotype: pass --genotype=NAME|TEXT|PATH or set '
                    'config.genotype')
  network = config.model.network
  info = data.dataset_info(config.dataset)  # UserError naming the datasets.
  if num_classes is None:
    num_classes = info.num_classes
  model = eval_network.build_augment_model(config.model, spec, num_classes)
  height, _, channels = info.image_shape
  size = image_size or height
  shape = (1, size, size, channels)
  params = count_params(model, shape)
  macs = count_macs(model, shape)
  return {
      'genotype': str(spec),
      'network': network,
      'params': params,
      'params_millions': round(params / 1e6, 2),
      'macs': macs,
      'macs_millions': round(macs / 1e6, 1),
      'input_shape': list(shape),
  }


def main(argv: Sequence[str]) -> None:
  del argv  # cli.run refuses positional arguments.
  config = cli.config_value(_CONFIG, 'experiments/augment_cifar10.py')
  print(json.dumps(summarize(config, _GENOTYPE.value, _IMAGE_SIZE.value, _NUM_CLASSES.value)))


def _define_flags():
  """Flags exist only when this module is the program (importing it defines none)."""
  global _CONFIG, _GENOTYPE, _IMAGE_SIZE, _NUM_CLASSES  # pylint: disable=global-statement
  _CONFIG = config_flags.DEFINE_config_file(
      'config', None, 'Augment config file, e.g. experiments/augment_cifar10.py.')
  _GENOTYPE = flags.DEFINE_string(
      'genotype', None,
      'Zoo name, genotype text, .json/.txt path or workdir; default: '
      'config.genotype.')
  _IMAGE_SIZE = flags.DEFINE_integer(
      'image_size', None, "Input height = width; default: the dataset's (224 for "
      'imagenet2012).')
  _NUM_CLASSES = flags.DEFINE_integer(
      'num_classes', None, 'Classifier outputs; default from config.dataset.name.')


if __name__ == '__main__':
  _define_flags()
  cli.run(main)

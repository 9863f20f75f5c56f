"""PyTorch weights of a DARTS evaluation network (the DARTS code's `cnn/model.py`
state dict, e.g. the authors' released `cifar10_model.pt`) as this network's variables.

  python -m darts_jax.torch_weights --weights=cifar10_model.pt --genotype=DARTS_V2 \
      --config=experiments/augment_cifar10.py [--out=/tmp/darts_v2_variables.npz]

evaluates the weights on the config's test split and prints one JSON line (test_loss,
test_acc, test_top5_acc, params); --out also writes the converted variables
(`params/...` and `batch_stats/...` arrays). The DARTS README gives 2.63% test error for
its `cifar10_model.pt` (DARTS_V2, 36 channels, 20 cells, `--auxiliary`; here
experiments/augment_cifar10.py, whose defaults are those). Reading a `.pt` file needs
PyTorch; an `.npz` of the state dict does not.

Layouts: convolutions OIHW -> HWIO, depthwise [C, 1, k, k] -> [k, k, C], linear
[out, in] -> [in, out]; BN weight, bias, running_mean, running_var -> scale, bias,
mean, var (`num_batches_tracked` is dropped). The module names follow the DARTS code
(`cells.{i}._ops.{j}.op.{k}`, `preprocess0.conv_1`, `auxiliary_head.features.{k}`).
"""

from __future__ import annotations

import json
from typing import Sequence

from absl import flags
from flax import traverse_util
from ml_collections import config_flags
import numpy as np

from darts_jax import data
from darts_jax.nn import params as params_lib
from darts_jax.runtime import parallel
from darts_jax.spaces.darts import torch_layout
from darts_jax.train import loop
from darts_jax.train import steps


def evaluate(config, genotype: str, weights_path: str, out: str | None = None) -> dict:
  """Test-split loss, top-1 and top-5 accuracy of the PyTorch weights."""
  info = data.dataset_info(config.dataset)
  model, variables = torch_layout.import_weights(
      config.model, genotype, info.num_classes, info.image_shape,
      torch_layout.read_state_dict(weights_path))
  if out:
    np.savez(out, **traverse_util.flatten_dict(variables, sep='/'))
  source = data.load_split(config.dataset, 'test')
  mesh = parallel.make_mesh()
  state = parallel.replicate(variables, mesh)
  eval_step = parallel.jit(steps.make_test_step(model, info))
  loss, top1, top5 = loop.evaluate(eval_step, state, source, np.arange(len(source)),
                                   config.eval_batch_size, mesh)
  return {'weights': weights_path, 'genotype': str(model.genotype), 'test_loss': loss,
          'test_acc': top1, 'test_top5_acc': top5,
          'params': params_lib.count_weights(variables['params'])}


def main(argv: Sequence[str]) -> None:
  del argv  # cli.run refuses positional arguments.
  from darts_jax import cli  # pylint: disable=g-import-not-at-top
  config = cli.config_value(_CONFIG, 'experiments/augment_cifar10.py')
  genotype = _GENOTYPE.value or config.genotype
  print(json.dumps(evaluate(config, genotype, _WEIGHTS.value, _OUT.value)))


def _define_flags():
  """Flags exist only when this module is the program (importing it defines none)."""
  global _CONFIG, _GENOTYPE, _WEIGHTS, _OUT  # pylint: disable=global-statement
  _CONFIG = config_flags.DEFINE_config_file(
      'config', None, 'Augment config file, e.g. experiments/augment_cifar10.py.')
  _GENOTYPE = flags.DEFINE_string(
      'genotype', None, 'Zoo name, genotype text, .json/.txt path or workdir; default: '
      'config.genotype.')
  _WEIGHTS = flags.DEFINE_string('weights', None, 'A .pt/.pth state dict or its .npz.',
                                 required=True)
  _OUT = flags.DEFINE_string('out', None, 'Also write the converted variables to this .npz.')


if __name__ == '__main__':
  from darts_jax import cli  # pylint: disable=g-import-not-at-top
  _define_flags()
  cli.run(main)

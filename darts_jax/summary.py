"""Parameter and multiply-add counts of an evaluation network, and a CLI.

  python -m darts_jax.summary --config=experiments/augment_cifar10.py \
      [--genotype=DARTS_V2] [--image_size=32] [--num_classes=10]

prints one JSON line: genotype, network, params, params_millions, macs,
macs_millions, input_shape. Nothing is compiled: shapes come from
`jax.eval_shape`, so even the full ImageNet network takes seconds.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from absl import flags
from ml_collections import config_flags

from darts_jax import cli
from darts_jax import data
from darts_jax.errors import UserError
from darts_jax.spaces.darts import eval_network
from darts_jax.spaces.darts.cost import count_macs, count_params

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

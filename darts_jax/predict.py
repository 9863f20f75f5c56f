"""Classify image files with an exported network, and a CLI.

  python -m darts_jax.predict --model=DIR [--format=stablehlo|onnx] [--top_k=5] \
      image.png [more images ...]

DIR is what `python -m darts_jax.export` wrote (default <workdir>/export). For each image
it prints the path, then the top-k classes with their probabilities, one per line:

  digit.png (stablehlo):
    0.9712  7
    0.0150  1
    ...

Images are converted to the model's channels (grayscale or RGB) and resized to its input
size with PIL. StableHLO is used when both formats were exported. The logic is in
`darts_jax.deploy.predict`.
"""

import sys
from typing import Sequence

from absl import flags

from darts_jax import cli
from darts_jax.deploy import predict
from darts_jax.errors import UserError


def main(argv: Sequence[str]) -> None:
  del argv  # cli.run refuses positional arguments: the images come as --image flags.
  if not _MODEL.value:
    raise UserError('no --model given; pass the directory python -m darts_jax.export wrote')
  if _TOP_K.value < 1:
    raise UserError(f'--top_k must be at least 1, got {_TOP_K.value}')
  model = predict.load_model(_MODEL.value, _FORMAT.value)
  results = predict.predict_files(model, list(_IMAGES.value or ()), _TOP_K.value)
  print(predict.format_predictions(results, model.format))


def images_as_flags(argv: Sequence[str], flag_values=flags.FLAGS) -> list[str]:
  """argv with its positional arguments (the image paths) turned into --image flags.

  An argument is positional when it does not start with '-' and is not the value of the
  flag before it (`--model DIR`), or when it comes after '--'.
  """
  out, images, wants_value = [argv[0]], [], False
  rest = list(argv[1:])
  for i, arg in enumerate(rest):
    if wants_value:
      out.append(arg)
      wants_value = False
    elif arg == '--':
      images.extend(rest[i + 1:])
      break
    elif arg.startswith('-') and arg != '-':
      out.append(arg)
      name = arg.lstrip('-')
      wants_value = ('=' not in name and name in flag_values
                     and not flag_values[name].boolean)
    else:
      images.append(arg)
  return out + [f'--image={path}' for path in images]


def _define_flags(flag_values=flags.FLAGS):
  """Flags exist only when this module is the program (importing it defines none)."""
  global _MODEL, _FORMAT, _TOP_K, _IMAGES  # pylint: disable=global-statement
  _MODEL = flags.DEFINE_string('model', None, 'Directory of an export (its manifest.json).',
                               flag_values=flag_values)
  _FORMAT = flags.DEFINE_string('format', None,
                                'stablehlo or onnx; default: stablehlo when both are there.',
                                flag_values=flag_values)
  _TOP_K = flags.DEFINE_integer('top_k', predict.TOP_K, 'Classes printed per image.',
                                flag_values=flag_values)
  _IMAGES = flags.DEFINE_multi_string('image', None, 'An image file (repeatable); or list '
                                      'them after the flags.', flag_values=flag_values)


if __name__ == '__main__':
  _define_flags()
  sys.argv = images_as_flags(sys.argv)
  cli.run(main)

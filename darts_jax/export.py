"""Export an evaluation run's trained network for deployment, and a CLI.

  python -m darts_jax.export --workdir=RUN [--format=stablehlo|onnx|all] [--out=DIR] \
      [--platforms=cpu,cuda]

writes into DIR (default RUN/export/) `model.stablehlo` (jax.export, weights baked in, any
batch size), `model.onnx` (jax2onnx) and `manifest.json` (input shape and dtype, the
normalization, which runs inside the model, class names, genotype, test accuracy, versions,
a few lines that load each format without darts_jax). Each format is loaded back and its
logits compared with JAX's on test images; the difference is printed. The logic is in
`darts_jax.deploy`.
"""

from typing import Sequence

from absl import flags

from darts_jax import cli
from darts_jax.deploy import exporter
from darts_jax.deploy import stablehlo
from darts_jax.errors import UserError


def main(argv: Sequence[str]) -> None:
  del argv  # cli.run refuses positional arguments.
  if not _WORKDIR.value:
    raise UserError('no --workdir given; pass the workdir of an evaluation run')
  exporter.export_run(_WORKDIR.value, exporter.parse_formats(_FORMAT.value), _OUT.value,
                      _PLATFORMS.value.split(','))


def _define_flags():
  """Flags exist only when this module is the program (importing it defines none)."""
  global _WORKDIR, _FORMAT, _OUT, _PLATFORMS  # pylint: disable=global-statement
  _WORKDIR = flags.DEFINE_string('workdir', None, 'Workdir of an evaluation (augment) run.')
  _FORMAT = flags.DEFINE_string('format', 'all', 'stablehlo, onnx or all.')
  _OUT = flags.DEFINE_string('out', None, 'Output directory; default <workdir>/export.')
  _PLATFORMS = flags.DEFINE_string(
      'platforms', ','.join(stablehlo.PLATFORMS),
      f'StableHLO: platforms to lower for, a subset of {",".join(stablehlo.KNOWN_PLATFORMS)}.')


if __name__ == '__main__':
  _define_flags()
  cli.run(main)

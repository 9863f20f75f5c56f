"""darts_jax command line: `python -m darts_jax.main --config=... --workdir=...`.

The config's `mode` picks the phase: 'search' (supernet + derived genotype) or
'augment' (train a genotype from scratch and evaluate it on the test split).
Errors in the user's input print one `error: ...` line and exit with status 2.

Several hosts: start the same command on every host with `--distributed=auto`
(Cloud TPU VM, SLURM) or `--coordinator_address=HOST:PORT --num_processes=N
--process_id=I`; each process feeds its own devices, process 0 writes the outputs.
"""

import os

from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from darts_jax import cli
from darts_jax.runtime import parallel
from darts_jax.errors import UserError

FLAGS = flags.FLAGS
_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file (experiments/*.py).',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and results.')
flags.DEFINE_string('compilation_cache', os.path.expanduser('~/.cache/darts_jax/xla'),
                    'Persistent XLA compilation cache directory ("" to disable).')
flags.DEFINE_enum('distributed', 'off', ['off', 'auto'],
                  'Several processes (hosts): "auto" calls jax.distributed.initialize() and '
                  'lets JAX detect the cluster (Cloud TPU VM workers, SLURM, Open MPI).')
flags.DEFINE_string('coordinator_address', '',
                    'HOST:PORT of process 0, for a multi-process run launched by hand.')
flags.DEFINE_integer('num_processes', 0, 'Number of processes (with --coordinator_address).')
flags.DEFINE_integer('process_id', -1, 'This process\'s index (with --coordinator_address).')


def run(config, workdir: str) -> dict:
  """The phase config.mode names: 'search', 'augment' (train from scratch) or 'pipeline'."""
  from darts_jax.train import augment, pipeline, search  # pylint: disable=g-import-not-at-top
  phases = {'search': search.search, 'augment': augment.train_and_evaluate,
            'pipeline': pipeline.run_pipeline}
  if config.mode not in phases:
    raise UserError(f'unknown config.mode {config.mode!r}; use "search", "augment" or '
                    '"pipeline"')
  return phases[config.mode](config, workdir)


def main(argv):
  del argv  # cli.run refuses positional arguments.
  # Before any other JAX call.
  parallel.initialize_distributed(parallel.distributed_args(
      FLAGS.distributed, FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id))
  if FLAGS.compilation_cache:
    jax.config.update('jax_compilation_cache_dir', FLAGS.compilation_cache)
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)
  config = cli.config_value(_CONFIG, 'experiments/search_digits.py')
  if not FLAGS.workdir:
    raise UserError('no --workdir given; pass a directory for the run\'s outputs')
  result = run(config, FLAGS.workdir)
  logging.info('result: %s', result)
  for key, value in result.items():
    print(f'{key}: {value}')


if __name__ == '__main__':
  cli.run(main)

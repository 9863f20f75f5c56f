"""darts_jax command line: `python -m darts_jax.main --config=... --workdir=...`.

The config's `mode` picks the phase: 'search' (supernet + derived genotype) or
'augment' (train a genotype from scratch and evaluate it on the test split).
Errors in the user's input print one `error: ...` line and exit with status 2.

Several hosts: start the same command on every host with `--distributed=auto`
(Cloud TPU VM, SLURM) or `--coordinator_address=HOST:PORT --num_processes=N
--process_id=I`; each process feeds its own devices, process 0 writes the outputs.
"""

import os
import re
import sys

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from darts_jax import parallel
from darts_jax.errors import UserError

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Experiment config file (experiments/*.py).',
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
  if config.mode == 'search':
    from darts_jax import search  # pylint: disable=g-import-not-at-top
    return search.search(config, workdir)
  if config.mode == 'augment':
    from darts_jax import augment  # pylint: disable=g-import-not-at-top
    return augment.train_and_evaluate(config, workdir)
  if config.mode == 'pipeline':
    from darts_jax import pipeline  # pylint: disable=g-import-not-at-top
    return pipeline.run_pipeline(config, workdir)
  raise UserError(f'unknown config.mode {config.mode!r}; use "search", "augment" or "pipeline"')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  try:  # Before any other JAX call.
    parallel.initialize_distributed(parallel.distributed_args(
        FLAGS.distributed, FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id))
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  if FLAGS.compilation_cache:
    jax.config.update('jax_compilation_cache_dir', FLAGS.compilation_cache)
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)
  try:
    config = load_config()
    if not FLAGS.workdir:
      raise UserError('no --workdir given; pass a directory for the run\'s outputs')
    result = run(config, FLAGS.workdir)
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  logging.info('result: %s', result)
  for key, value in result.items():
    print(f'{key}: {value}')


def parse_flags(argv):
  """absl's flag parsing; a bad flag or --config override is one `error:` line, exit 2."""
  try:
    return FLAGS(argv)
  except Exception as e:  # pylint: disable=broad-except
    # ml_collections raises AttributeError/ValueError/OSError with nested quotes.
    text = _one_line(e)
    if _CONFIG_FILE_FAILED not in str(e):
      text += '; check the --config.<field> names against the config file'
    print(f'error: {text}', file=sys.stderr)
    sys.exit(2)


# ml_collections' message when the config file's get_config raised: it embeds the
# whole traceback, of which the flag and the last exception are the message.
_CONFIG_FILE_FAILED = 'Error whilst parsing config file'


def _one_line(e: Exception) -> str:
  text = str(e).replace('\\n', ' ').replace('\\', '').replace('"', '').replace("'", '')
  text = ' '.join(text.split()).replace(' Did you mean', '. Did you mean')
  if _CONFIG_FILE_FAILED in text:
    flag = text.split(_CONFIG_FILE_FAILED)[0].rstrip(': ')
    text = f'{flag}: {re.split(r"[A-Za-z]*(?:Error|Exception): ", text)[-1]}'
  return f'unknown config field {text}' if isinstance(e, AttributeError) else text


def load_config():
  """FLAGS.config, or a UserError when it is missing or its file does not load."""
  try:
    config = FLAGS.config
    if config is not None:
      config.get('mode')  # A config file that failed to load raises here.
  except (OSError, SyntaxError, ValueError, AttributeError, ImportError) as e:
    raise UserError(f'cannot load --config: {_one_line(e)}') from e
  if config is None:
    raise UserError('no --config given; pass e.g. --config=experiments/search_digits.py')
  return config


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)

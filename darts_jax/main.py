"""darts_jax command line: `python -m darts_jax.main --config=... --workdir=...`.

The config's `mode` picks the phase: 'search' (supernet + derived genotype) or
'augment' (train a genotype from scratch and evaluate it on the test split).
Errors in the user's input print one `error: ...` line and exit with status 2.
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from darts_jax.errors import UserError

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Experiment config file (experiments/*.py).',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and results.')
flags.DEFINE_string('compilation_cache', os.path.expanduser('~/.cache/darts_jax/xla'),
                    'Persistent XLA compilation cache directory ("" to disable).')


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
  if FLAGS.compilation_cache:
    jax.config.update('jax_compilation_cache_dir', FLAGS.compilation_cache)
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)
  try:
    if FLAGS.config is None:
      raise UserError('no --config given; pass e.g. --config=experiments/search_digits.py')
    if not FLAGS.workdir:
      raise UserError('no --workdir given; pass a directory for the run\'s outputs')
    result = run(FLAGS.config, FLAGS.workdir)
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  logging.info('result: %s', result)
  for key, value in result.items():
    print(f'{key}: {value}')


if __name__ == '__main__':
  app.run(main)

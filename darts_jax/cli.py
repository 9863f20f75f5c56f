"""What every command-line entry point shares: bad input is one `error:` line, exit 2.

`run(main)` is `absl.app.run` with flag parsing that turns a bad flag or
`--config.<field>` override into that line, and with `main` turned the same way
on a UserError. The entry points: darts_jax.main, .summary, .visualize, .report,
.torch_weights.
"""

import logging
import os
import re
import sys
from typing import Callable, Sequence

from absl import app
from absl import flags
from ml_collections import config_flags

from darts_jax.errors import UserError

# ml_collections' message when a config file's get_config raised: it embeds the
# whole traceback, of which the flag and the last exception are the message.
_CONFIG_FILE_FAILED = 'Error whilst parsing config file'
_FIELD_HINT = 'check the --config.<field> names against the config file'


def one_line(e: Exception) -> str:
  """An ml_collections / absl flag error (nested quotes, newlines) as one plain line."""
  text = str(e).replace('\\n', ' ').replace('\\', '').replace('"', '').replace("'", '')
  text = re.sub(r'\.* Did you mean', '. Did you mean', ' '.join(text.split()))
  if _CONFIG_FILE_FAILED in text:
    flag = text.split(_CONFIG_FILE_FAILED)[0].rstrip(': ')
    text = f'{flag}: {re.split(r"[A-Za-z]*(?:Error|Exception): ", text)[-1]}'
  return f'unknown config field {text}' if isinstance(e, AttributeError) else text


def _exit_with(message: str):
  print(f'error: {message}', file=sys.stderr)
  sys.exit(2)


def parse_flags(argv: Sequence[str]):
  """absl's flag parsing; a bad flag or --config override is one `error:` line, exit 2."""
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # pylint: disable=broad-except
    # ml_collections raises AttributeError/ValueError/OSError with nested quotes.
    text = one_line(e)
    about_a_field = isinstance(e, AttributeError) or 'config.' in text
    _exit_with(f'{text}; {_FIELD_HINT}' if about_a_field else text)


def config_value(config_flag, example: str):
  """The config of a DEFINE_config_file flag (its file loads on first access)."""
  flag = flags.FLAGS[config_flag.name]
  spec = (config_flags.get_config_filename(flag) or '') if flag.present else ''
  path = spec if os.path.exists(spec) else spec.split(':', 1)[0]
  if flag.present and not spec:
    raise UserError(f'no --config given; pass e.g. --config={example}')
  if path and not os.path.exists(path):
    raise UserError(f'config file {path} not found (relative to {os.getcwd()}); pass e.g. '
                    f'--config={example}')
  try:
    config = config_flag.value
    if config is not None:
      config.get('mode')  # A config file that failed to load raises here.
  except (OSError, SyntaxError, ValueError, AttributeError, ImportError) as e:
    raise UserError(f'cannot load --config: {one_line(e)}') from e
  if config is None:
    raise UserError(f'no --config given; pass e.g. --config={example}')
  return config


def run(main: Callable[[Sequence[str]], None]) -> None:
  def main_with_user_errors(argv):
    try:
      if len(argv) > 1:
        raise UserError(f'unexpected arguments {" ".join(argv[1:])}; flags take the form '
                        '--name=value')
      main(argv)
    except UserError as e:
      _exit_with(str(e))

  # JAX logs at INFO that it found no TPU library on every CPU or GPU machine.
  logging.getLogger('jax._src.xla_bridge').setLevel(logging.WARNING)
  app.run(main_with_user_errors, flags_parser=parse_flags)

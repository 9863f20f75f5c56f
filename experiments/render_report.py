"""Renders a report.html in headless Chromium and saves a PNG screenshot.

  python experiments/render_report.py --report=/path/run/report.html \
      --out=/tmp/report.png
  python experiments/render_report.py --workdir=/path/run   # writes report
                                                          # first

Needs Chromium: `apt-get install chromium` (Debian/Ubuntu).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from typing import Sequence

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from darts_jax import report  # pylint: disable=g-import-not-at-top,wrong-import-position
from darts_jax.errors import UserError  # pylint: disable=g-import-not-at-top,wrong-import-position

_REPORT = flags.DEFINE_string('report', None, 'Path of a report.html.')
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Run directory: writes its report.html, then renders it.')
_OUT = flags.DEFINE_string(
    'out', None, 'Screenshot PNG (default: next to the report, report.png).')
_WIDTH = flags.DEFINE_integer('width', 1280, 'Window width in pixels.')
_HEIGHT = flags.DEFINE_integer('height', 2400, 'Window height in pixels.')
_TIMEOUT = flags.DEFINE_integer('timeout', 120, 'Seconds to wait for Chromium.')

_BROWSERS = ('/usr/bin/chromium', 'chromium', 'chromium-browser',
             'google-chrome', 'google-chrome-stable')


def find_chromium() -> str:
  """Path of a Chromium binary; UserError naming the install if none."""
  for name in _BROWSERS:
    path = name if os.path.isabs(name) else shutil.which(name)
    if path and os.path.isfile(path) and os.access(path, os.X_OK):
      return path
  raise UserError('Chromium not found; install it with `apt-get install '
                  'chromium` (Debian/Ubuntu) and rerun')


def render(report_path: str, out: str, width: int = 1280, height: int = 2400,
           timeout: int = 120) -> str:
  """Screenshots `report_path` (a local file) into the PNG `out`."""
  if not os.path.isfile(report_path):
    raise UserError(f'report {report_path} not found; write it with '
                    'python -m darts_jax.report --workdir=<run dir>')
  browser = find_chromium()
  out = os.path.abspath(out)
  os.makedirs(os.path.dirname(out), exist_ok=True)
  if os.path.exists(out):
    os.remove(out)
  with tempfile.TemporaryDirectory(prefix='chromium_profile_') as profile:
    cmd = [
        browser, '--headless', '--no-sandbox', '--disable-gpu',
        '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--hide-scrollbars',
        f'--user-data-dir={profile}', f'--screenshot={out}',
        f'--window-size={width},{height}',
        'file://' + os.path.abspath(report_path),
    ]
    try:
      proc = subprocess.run(cmd, capture_output=True, text=True,
                            timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
      raise UserError(f'Chromium did not finish in {timeout} s; rerun with a '
                      'larger --timeout') from e
  if not os.path.isfile(out) or os.path.getsize(out) == 0:
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    raise UserError(f'Chromium wrote no screenshot (exit {proc.returncode}): '
                    + ' | '.join(tail))
  return out


def main(argv: Sequence[str]) -> None:
  try:
    if len(argv) > 1:
      raise UserError(f'unexpected arguments {" ".join(argv[1:])}')
    if _WORKDIR.value:
      report_path = report.write_report(_WORKDIR.value)
    elif _REPORT.value:
      report_path = _REPORT.value
    else:
      raise UserError('pass --report=<report.html> or --workdir=<run dir>')
    out = _OUT.value or os.path.join(
        os.path.dirname(os.path.abspath(report_path)), 'report.png')
    print(render(report_path, out, _WIDTH.value, _HEIGHT.value,
                 _TIMEOUT.value))
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)


if __name__ == '__main__':
  app.run(main)

"""The self-contained HTML report of a search, augment or pipeline run.

  python -m darts_jax.report --workdir=/path/to/run   # -> <workdir>/report.html

The work is `darts_jax.viz.report`'s; this is its command line.
"""

from darts_jax.viz.report import main, write_report, write_report_or_warn

__all__ = ['main', 'write_report', 'write_report_or_warn']

if __name__ == '__main__':
  from darts_jax import cli  # pylint: disable=g-import-not-at-top
  from darts_jax.viz import report  # pylint: disable=g-import-not-at-top
  report._define_flags()  # pylint: disable=protected-access
  cli.run(main)

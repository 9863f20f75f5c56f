"""Pictures of a search: an architecture's cells, or a workdir's cells and alphas.

  python -m darts_jax.visualize --genotype=DARTS_V2 --out=/tmp/cells
  python -m darts_jax.visualize --workdir=/path/to/search_run   # -> plots/

The work is `darts_jax.viz.workdir`'s; this is its command line.
"""

from darts_jax.viz.workdir import draw_epoch, draw_workdir, main, run_cli

__all__ = ['draw_epoch', 'draw_workdir', 'main', 'run_cli']

if __name__ == '__main__':
  from darts_jax import cli  # pylint: disable=g-import-not-at-top
  from darts_jax.viz import workdir  # pylint: disable=g-import-not-at-top
  workdir._define_flags()  # pylint: disable=protected-access
  cli.run(main)

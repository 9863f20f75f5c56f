"""Pictures of a DARTS search: its cells, alpha heat map and alpha evolution.

The drawing itself lives in `cell_drawing` (cells) and `alpha_plots` (alphas); this
module puts them in a workdir's `plots/` and is the command-line entry point.

CLI:
  python -m darts_jax.visualize --genotype=DARTS_V2 --out=/tmp/cells
  python -m darts_jax.visualize --workdir=/path/to/search_run   # -> plots/
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Sequence

from absl import logging

from darts_jax import genotypes as genotypes_lib
from darts_jax.alpha_plots import load_alphas, plot_alpha_evolution, plot_alpha_heatmap
from darts_jax.cell_drawing import draw_genotype, draw_nb201_arch
from darts_jax.errors import UserError
from darts_jax.run_files import find_run_files

PLOTS_SUBDIR = 'plots'


def draw_workdir(workdir: str | os.PathLike[str],
                 out: str | os.PathLike[str] | None = None) -> list[str]:
  """Draws a run's final cells, alpha heat map and evolution into `out`.

  `out` defaults to `<workdir>/plots`. Missing inputs are skipped with a log
  line; raises UserError if nothing at all could be drawn.
  """
  rf = find_run_files(workdir)
  out = os.fspath(out) if out else os.path.join(rf.workdir, PLOTS_SUBDIR)
  os.makedirs(out, exist_ok=True)
  paths: list[str] = []
  if rf.genotype is not None:
    paths += draw_genotype(rf.genotype, out)
  if rf.final_alphas:
    try:
      n, r, prims = load_alphas(rf.final_alphas)
      paths.append(plot_alpha_heatmap(n, r, prims,
                                      os.path.join(out, 'alphas.png')))
    except UserError as e:
      rf.notes.append(f'heat map skipped: {e}')
  if rf.epoch_alphas:
    try:
      paths.append(plot_alpha_evolution(
          rf.epoch_alphas, os.path.join(out, 'alpha_evolution.png')))
    except UserError as e:
      rf.notes.append(f'alpha evolution skipped: {e}')
  for note in rf.notes:
    logging.info('%s', note)
  if not paths:
    raise UserError(f'nothing to draw in {rf.workdir}: no genotype.json, '
                    'alphas.npz or alphas/epoch_*.npz; is it a search workdir?')
  return paths


def draw_epoch(workdir: str | os.PathLike[str], epoch: int,
               genotype: Any = None, alphas_normal: Any = None,
               alphas_reduce: Any = None,
               primitives: Sequence[str] | None = None) -> list[str]:
  """Per-epoch pictures for a running search; never raises.

  Writes `<workdir>/plots/epoch_003_{normal,reduce}.{dot,png,svg}` (a NAS-Bench-201
  arch: `epoch_003_cell.*`), copies them to `latest_{normal,reduce}.*`, and draws `latest_alphas.png` (heat
  map) when alphas are given. Failures are logged as warnings.

  Returns:
    The written paths ([] on failure).
  """
  paths: list[str] = []
  try:
    plots = os.path.join(os.fspath(workdir), PLOTS_SUBDIR)
    os.makedirs(plots, exist_ok=True)
    if genotype is not None:
      prefix = f'epoch_{int(epoch):03d}_'
      draw = draw_nb201_arch if _is_nb201(genotype) else draw_genotype
      for p in draw(genotype, plots, prefix=prefix):
        paths.append(p)
        latest = os.path.join(
            plots, 'latest_' + os.path.basename(p)[len(prefix):])
        tmp = latest + '.tmp'
        shutil.copyfile(p, tmp)
        os.replace(tmp, latest)
        paths.append(latest)
    if alphas_normal is not None and alphas_reduce is not None:
      prims = list(primitives if primitives is not None
                   else genotypes_lib.PRIMITIVES)
      paths.append(plot_alpha_heatmap(
          alphas_normal, alphas_reduce, prims,
          os.path.join(plots, 'latest_alphas.png'),
          title=f'epoch {epoch}: architecture weights (softmax; red = kept)'))
  except Exception as e:  # pylint: disable=broad-except
    logging.warning('could not draw the epoch %s plots in %s: %s: %s', epoch,
                    workdir, type(e).__name__, e)
  return paths


def _is_nb201(spec: Any) -> bool:
  """A NAS-Bench-201 Arch, arch string, or file / workdir holding one."""
  from darts_jax import nb201  # pylint: disable=g-import-not-at-top
  return isinstance(spec, nb201.Arch) or nb201.is_arch_spec(spec)


# ----------------------------------------------------------------------------
# CLI.


def run_cli(genotype: str | None = None, workdir: str | None = None,
            out: str | None = None) -> list[str]:
  """The CLI's work: draw `genotype` into `out`, or a whole `workdir`."""
  if genotype and workdir:
    raise UserError('pass either --genotype or --workdir, not both')
  if out:
    try:
      os.makedirs(out, exist_ok=True)
    except OSError as e:
      raise UserError(f'cannot create --out directory {out} ({e.strerror}); pass a writable '
                      'path') from None
  if genotype:
    draw = draw_nb201_arch if _is_nb201(genotype) else draw_genotype
    return draw(genotype, out or PLOTS_SUBDIR)
  if workdir:
    return draw_workdir(workdir, out)
  raise UserError('nothing to draw: pass --genotype=<zoo name | text | path> '
                  '(with --out=<dir>) or --workdir=<search run dir>')


def _define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string('genotype', None,
                      'Genotype to draw: zoo name, genotype text, .json/.txt '
                      'file or a workdir with genotype.json.')
  flags.DEFINE_string('workdir', None,
                      'Search run directory: draws its final cells, alpha heat '
                      'map and evolution into <workdir>/plots.')
  flags.DEFINE_string('out', None,
                      'Output directory (default: ./plots for --genotype, '
                      '<workdir>/plots for --workdir).')


def main(argv: Sequence[str]) -> None:
  del argv  # cli.run refuses positional arguments.
  from absl import flags  # pylint: disable=g-import-not-at-top
  flag_values = flags.FLAGS
  for p in run_cli(flag_values.genotype, flag_values.workdir, flag_values.out):
    print(p)


if __name__ == '__main__':
  from darts_jax import cli  # pylint: disable=g-import-not-at-top
  _define_flags()
  cli.run(main)

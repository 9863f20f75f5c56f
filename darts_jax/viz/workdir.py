"""Pictures of a search: its cells, alpha heat map and alpha evolution, for any search space.

The drawing itself lives in `cell_drawing` (cells) and `alpha_plots` (alphas); this
module puts them in a workdir's `plots/`, draws a running search's epoch, and is the
work of the `python -m darts_jax.visualize` command line:

  python -m darts_jax.visualize --genotype=DARTS_V2 --out=/tmp/cells
  python -m darts_jax.visualize --workdir=/path/to/search_run   # -> plots/
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Mapping, Sequence

from absl import logging

from darts_jax.errors import UserError
from darts_jax.viz import alpha_plots
from darts_jax.viz import cell_drawing
from darts_jax.viz import run_files

PLOTS_SUBDIR = 'plots'


def draw_workdir(workdir: str | os.PathLike[str],
                 out: str | os.PathLike[str] | None = None) -> list[str]:
  """Draws a run's final cells, alpha heat map and evolution into `out`.

  `out` defaults to `<workdir>/plots`. Missing inputs are skipped with a log
  line; raises UserError if nothing at all could be drawn.
  """
  rf = run_files.find_run_files(workdir)
  out = os.fspath(out) if out else os.path.join(rf.workdir, PLOTS_SUBDIR)
  os.makedirs(out, exist_ok=True)
  paths: list[str] = []
  graphs = rf.cell_graphs()
  if graphs:
    paths += cell_drawing.draw_cells(graphs, out)
  if rf.final_alphas:
    try:
      cells, prims, edges = alpha_plots.load_alphas(rf.final_alphas)
      paths.append(alpha_plots.plot_alpha_heatmap(
          cells, prims, edges, os.path.join(out, 'alphas.png'),
          kept=alpha_plots.kept_from_graphs(graphs, prims),
          titles=alpha_plots.cell_titles(graphs)))
    except UserError as e:
      rf.notes.append(f'heat map skipped: {e}')
  if rf.epoch_alphas:
    try:
      paths.append(alpha_plots.plot_alpha_evolution(
          rf.epoch_alphas, os.path.join(out, 'alpha_evolution.png')))
    except UserError as e:
      rf.notes.append(f'alpha evolution skipped: {e}')
  for note in rf.notes:
    logging.info('%s', note)
  if not paths:
    raise UserError(f'nothing to draw in {rf.workdir}: no genotype.json, '
                    'alphas.npz or alphas/epoch_*.npz; is it a search workdir?')
  return paths


def _copy_atomic(src: str, dst: str) -> None:
  tmp = dst + '.tmp'
  shutil.copyfile(src, tmp)
  os.replace(tmp, dst)


def draw_epoch(workdir: str | os.PathLike[str], epoch: int, space: Any, arch: Any,
               alphas: Mapping[str, Any] | None = None,
               primitives: Sequence[str] | None = None,
               edges: Sequence[tuple[int, int]] | None = None) -> list[str]:
  """Per-epoch pictures for a running search; never raises.

  Writes `<workdir>/plots/epoch_003_<graph name>.{dot,png,svg}` for each of
  `space.cell_graphs(arch)` (DARTS: `normal`, `reduce`; NAS-Bench-201: `cell`), copies
  them to `latest_<graph name>.*`, and draws `latest_alphas.png` (the heat map, the
  architecture's edges outlined) when `alphas` ({cell type: [edges, ops]}; other arrays
  are ignored) are given. Failures are logged as warnings.

  Args:
    workdir: the search workdir.
    epoch: the epoch (1-based).
    space: the search space (a configured instance or the class); None: the space
      claiming `arch`.
    arch: the epoch's derived architecture (or a spec the space loads); None: no cells.
    alphas: the alphas (or edge weights) per cell type.
    primitives: op per alpha column; default `space.primitives`.
    edges: (dst, src) per alpha row; default a configured space's `edges()`.

  Returns:
    The written paths ([] on failure).
  """
  paths: list[str] = []
  try:
    plots = os.path.join(os.fspath(workdir), PLOTS_SUBDIR)
    os.makedirs(plots, exist_ok=True)
    graphs = ()
    if arch is not None:
      space, arch = run_files.resolve_arch(arch, space)
      graphs = tuple(space.cell_graphs(arch))
      prefix = f'epoch_{int(epoch):03d}_'
      for p in cell_drawing.draw_cells(graphs, plots, prefix=prefix):
        latest = os.path.join(plots, 'latest_' + os.path.basename(p)[len(prefix):])
        _copy_atomic(p, latest)
        paths += [p, latest]
    if alphas is not None:
      prims = [str(p) for p in (primitives if primitives is not None
                                else getattr(space, 'primitives'))]
      types = getattr(space, 'cell_types', None)  # The space's cells, else any 2-d array.
      cells = alpha_plots.alpha_cells(
          {k: alphas[k] for k in types if k in alphas} if types else alphas, prims)
      if edges is None and space is not None and not isinstance(space, type):
        edges = space.edges()
      edges = list(edges) if edges is not None else alpha_plots.infer_edges(cells)
      paths.append(alpha_plots.plot_alpha_heatmap(
          cells, prims, edges, os.path.join(plots, 'latest_alphas.png'),
          kept=alpha_plots.kept_from_graphs(graphs, prims),
          title=f'epoch {epoch}: architecture weights (softmax; red = kept)',
          titles=alpha_plots.cell_titles(graphs)))
  except Exception as e:  # pylint: disable=broad-except
    logging.warning('could not draw the epoch %s plots in %s: %s: %s', epoch,
                    workdir, type(e).__name__, e)
  return paths


# ----------------------------------------------------------------------------
# CLI.


def run_cli(genotype: str | None = None, workdir: str | None = None,
            out: str | None = None) -> list[str]:
  """The CLI's work: draw `genotype` (any space's architecture spec) into `out`, or a
  whole `workdir`."""
  if genotype and workdir:
    raise UserError('pass either --genotype or --workdir, not both')
  if out:
    try:
      os.makedirs(out, exist_ok=True)
    except OSError as e:
      raise UserError(f'cannot create --out directory {out} ({e.strerror}); pass a writable '
                      'path') from None
  if genotype:
    return cell_drawing.draw_arch(genotype, out or PLOTS_SUBDIR)
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

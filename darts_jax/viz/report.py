"""One self-contained HTML page summarising a search (or pipeline) workdir, of any space.

`write_report(workdir)` writes `<workdir>/report.html` with the config, the
training curves, the final cells, the alpha heat map and evolution, the
architecture's text and history, and the evaluation results of a pipeline run.
Every picture is embedded as a `data:` URI; the page references nothing
outside itself. Missing files are skipped and listed under "Notes". The cells and
their counts come from the search space (`space.cell_graphs(arch)`); the pieces of the
page are in `report_sections`.

CLI:
  python -m darts_jax.report --workdir=/path/to/run
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
from typing import Any, Sequence

from absl import logging

from darts_jax.errors import UserError
from darts_jax.viz import alpha_plots
from darts_jax.viz import cell_drawing
from darts_jax.viz import population
from darts_jax.viz import report_sections as rs
from darts_jax.viz import run_files
from darts_jax.viz.report_sections import EVAL_RUNS, esc, img, section
from darts_jax.viz.report_sections import plot_eval_curves, plot_search_curves, read_metrics

__all__ = ['REPORT_NAME', 'build_report_html', 'write_report', 'write_report_or_warn',
           'read_metrics', 'plot_search_curves', 'plot_eval_curves', 'main']

REPORT_NAME = 'report.html'

_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif;
  margin: 0; background: #f4f5f7; color: #1f2328; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 8px 0 2px; }
h2 { font-size: 19px; margin: 0 0 12px; border-bottom: 1px solid #d8dee4;
  padding-bottom: 6px; }
.sub { color: #59636e; font-size: 13px; margin-bottom: 18px;
  word-break: break-all; }
section { background: #fff; border: 1px solid #d8dee4; border-radius: 8px;
  padding: 16px 20px; margin: 16px 0; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; }
.card { background: #fff; border: 1px solid #d8dee4; border-radius: 8px;
  padding: 10px 14px; min-width: 140px; }
.card .k { color: #59636e; font-size: 12px; }
.card .v { font-size: 21px; font-weight: 600; margin-top: 2px; }
.card .d { color: #59636e; font-size: 11px; }
figure { margin: 8px 0; text-align: center; }
figure img { max-width: 100%; height: auto; }
figcaption { color: #59636e; font-size: 12px; margin-top: 4px; }
.row { display: flex; flex-wrap: wrap; gap: 12px; }
.row figure { flex: 1 1 420px; }
.cells figure { margin: 4px 0 14px; }
.cells img { max-height: 440px; max-width: 960px; }
pre { background: #f6f8fa; border: 1px solid #d8dee4; border-radius: 6px;
  padding: 10px 12px; font-size: 12px; overflow-x: auto;
  white-space: pre-wrap; word-break: break-word; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #d8dee4; padding: 4px 10px; text-align: right; }
th { background: #f6f8fa; }
td.l, th.l { text-align: left; }
.changed { background: #fff8c5; }
details summary { cursor: pointer; color: #0b57d0; margin: 6px 0; }
ul.notes { color: #59636e; font-size: 13px; }
"""


def _cells_section(rf: run_files.RunFiles, graphs: Sequence[Any], tmp: str) -> str:
  """The final cells' pictures, summaries and the architecture's text."""
  if not graphs:
    return ''
  paths = cell_drawing.draw_cells(graphs, tmp, prefix='cell_')
  figs, summaries = [], []
  for g in graphs:
    svg, png = (os.path.join(tmp, f'cell_{g.name}.{ext}') for ext in ('svg', 'png'))
    figs.append(img(svg if svg in paths and os.path.isfile(svg) else png, g.title))
    summaries.append(f'{esc(g.title)} (node←input op): {esc(g.summary())}')
  return section(
      'Final cells' if len(graphs) > 1 else 'Final cell',
      f'<div class="cells">{"".join(figs)}</div>'
      f'<p class="sub">{"<br>".join(summaries)}<br>from {esc(rf.arch_source)}</p>'
      f'<pre id="genotype">{esc(rf.space.to_text(rf.arch))}</pre>', 'cells')


def _alphas_section(rf: run_files.RunFiles, graphs: Sequence[Any], tmp: str) -> str:
  """The final alphas' heat map (the architecture's edges outlined) and evolution."""
  body = []
  if rf.final_alphas:
    cells, prims, edges = alpha_plots.load_alphas(rf.final_alphas)
    kept = alpha_plots.kept_from_graphs(graphs, prims)
    p = alpha_plots.plot_alpha_heatmap(cells, prims, edges, os.path.join(tmp, 'alphas.png'),
                                       kept=kept, titles=alpha_plots.cell_titles(graphs))
    red = '; red boxes are kept' if any(kept.values()) else ''
    body.append(img(p, 'alpha heat map',
                    f'final architecture weights ({os.path.basename(rf.final_alphas)}): '
                    f'softmax over ops per edge{red}'))
  if rf.epoch_alphas:
    p = alpha_plots.plot_alpha_evolution(
        rf.epoch_alphas, os.path.join(tmp, 'alpha_evolution.png'))
    body.append(img(p, 'alpha evolution', f'{len(rf.epoch_alphas)} epochs of alphas'))
  return section('Architecture weights', ''.join(body), 'alphas') if body else ''


def _read_results(workdir: str, search_dir: str, notes: list[str]):
  """(results per evaluation run and 'pipeline', metrics rows per evaluation run)."""
  results: dict[str, Any] = {}
  eval_rows: dict[str, list[dict[str, Any]]] = {}
  for name, _ in EVAL_RUNS:
    d = os.path.join(workdir, name)
    if not os.path.isdir(d):
      continue
    res = rs.read_json(os.path.join(d, 'result.json'), notes)
    if res is not None:
      results[name] = res
    else:
      notes.append(f'no {name}/result.json')
    r = read_metrics(os.path.join(d, 'metrics.jsonl'), notes)
    if r:
      eval_rows[name] = r
  if os.path.abspath(search_dir) != os.path.abspath(workdir):
    summary = rs.read_json(os.path.join(workdir, 'result.json'), notes)
    if summary is not None:
      results['pipeline'] = summary
      if isinstance(summary, dict):
        for name, _ in EVAL_RUNS:  # Fall back to the summary's entries.
          if name not in results and isinstance(summary.get(name), dict):
            results[name] = summary[name]
  return results, eval_rows


def _read_configs(workdir: str, search_dir: str, notes: list[str]) -> list[tuple[str, Any]]:
  configs = []
  for d in dict.fromkeys([workdir, search_dir] + [
      os.path.join(workdir, n) for n, _ in EVAL_RUNS]):
    cfg = rs.read_json(os.path.join(d, 'config.json'), notes)
    if cfg is not None:
      configs.append((os.path.relpath(os.path.join(d, 'config.json'), workdir), cfg))
  if not configs:
    notes.append(f'no config.json in {workdir}')
  return configs


def build_report_html(workdir: str | os.PathLike[str]) -> str:
  """The report page for `workdir` as a string (see `write_report`); a population's
  (config.seeds) is `population.build_population_html`."""
  summary = rs.read_json(os.path.join(os.fspath(workdir), 'result.json'), [])
  if population.is_population(summary):
    return population.build_population_html(os.fspath(workdir), summary, _CSS)
  rf = run_files.find_run_files(workdir)  # UserError if not a directory.
  workdir, search_dir = rf.workdir, rf.search_dir
  notes = list(rf.notes)
  rows = read_metrics(os.path.join(search_dir, 'metrics.jsonl'), notes)
  results, eval_rows = _read_results(workdir, search_dir, notes)
  configs = _read_configs(workdir, search_dir, notes)
  graphs: Sequence[Any] = ()
  if rf.arch is not None:
    try:
      graphs = rf.cell_graphs()
    except Exception as e:  # pylint: disable=broad-except
      notes.append(f'cells of {rf.arch_source} failed: {type(e).__name__}: {e}')

  parts = []
  with tempfile.TemporaryDirectory(prefix='darts_report_') as tmp:
    parts.append(rs.safe(notes, 'summary',
                         lambda: rs.summary_cards(rows, rf.space, graphs, results)))
    parts.append(rs.safe(notes, 'evaluation', lambda: rs.results_section(
        results, eval_rows, tmp, notes)))

    def curves() -> str:
      if not rows:
        return ''
      p = plot_search_curves(rows, os.path.join(tmp, 'search_curves.svg'))
      return section('Search curves', img(p, 'search curves'), 'curves') if p else ''
    parts.append(rs.safe(notes, 'search curves', curves))
    parts.append(rs.safe(notes, 'cell pictures', lambda: _cells_section(rf, graphs, tmp)))
    parts.append(rs.safe(notes, 'alpha plots', lambda: _alphas_section(rf, graphs, tmp)))

  parts.append(rs.safe(notes, 'genotype history', lambda: rs.history_section(
      os.path.join(search_dir, run_files.HISTORY_FILE), notes)))
  if configs:
    body = ''.join(
        f'<details{" open" if k == 0 else ""}><summary>{esc(name)}</summary>'
        f'<pre>{esc(json.dumps(cfg, indent=2, sort_keys=True))}</pre>'
        '</details>' for k, (name, cfg) in enumerate(configs))
    parts.append(section('Config', body, 'config'))
  if notes:
    parts.append(section(
        'Notes', '<ul class="notes">' + ''.join(
            f'<li>{esc(n)}</li>' for n in dict.fromkeys(notes)) + '</ul>', 'notes'))

  title = f'DARTS search report: {os.path.basename(os.path.abspath(workdir))}'
  now = datetime.datetime.now().strftime('%Y-%m-%d %H:%M')
  return (
      '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
      '<meta name="viewport" content="width=device-width, initial-scale=1">'
      f'<title>{esc(title)}</title><style>{_CSS}</style></head><body><main>'
      f'<h1>{esc(title)}</h1><div class="sub">{esc(os.path.abspath(workdir))}'
      f' · generated {now}</div>' + ''.join(parts) + '</main></body></html>\n')


def write_report(workdir: str | os.PathLike[str]) -> str:
  """Writes `<workdir>/report.html` (self-contained) and returns its path.

  Raises:
    UserError: if `workdir` does not exist.
  """
  workdir = os.fspath(workdir)
  page = build_report_html(workdir)
  path = os.path.join(workdir, REPORT_NAME)
  fd, tmp = tempfile.mkstemp(prefix='.report_', suffix='.html', dir=workdir)
  try:
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
      f.write(page)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return path


def write_report_or_warn(workdir: str | os.PathLike[str]) -> str | None:
  """`write_report` at the end of a run: a failure is logged, never fails the run."""
  try:
    return write_report(workdir)
  except Exception as e:  # pylint: disable=broad-except
    logging.warning('could not write the run report: %s: %s', type(e).__name__, e)
    return None


# ----------------------------------------------------------------------------
# CLI.


def _define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string('workdir', None,
                      'Search or pipeline run directory; writes '
                      '<workdir>/report.html.')


def main(argv: Sequence[str]) -> None:
  del argv  # cli.run refuses positional arguments.
  from absl import flags  # pylint: disable=g-import-not-at-top
  workdir = flags.FLAGS.workdir
  if not workdir:
    raise UserError('pass --workdir=<search or pipeline run directory>')
  if os.path.isdir(workdir) and not os.path.isfile(os.path.join(workdir, 'config.json')):
    raise UserError(f'{workdir} holds no run (no config.json); pass the --workdir of a '
                    'search, augment or pipeline run')
  print(write_report(workdir))

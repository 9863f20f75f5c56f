"""One self-contained HTML page summarising a search (or pipeline) workdir.

`write_report(workdir)` writes `<workdir>/report.html` with the config, the
training curves, the final cells, the alpha heat map and evolution, the
genotype text and history, and the evaluation results of a pipeline run.
Every picture is embedded as a `data:` URI; the page references nothing
outside itself. Missing files are skipped and listed under "Notes".

CLI:
  python -m darts_jax.report --workdir=/path/to/run
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import math
import os
import tempfile
from typing import Any, Callable, Sequence

from absl import logging
import numpy as np

from darts_jax import alpha_plots
from darts_jax import cell_drawing
from darts_jax import figures
from darts_jax import genotypes as genotypes_lib
from darts_jax import run_files
from darts_jax.errors import UserError

REPORT_NAME = 'report.html'
EVAL_RUNS = (('augment', 'searched cell (trained from scratch)'),
             ('random', 'random cell baseline'))

_MIME = {'.png': 'image/png', '.svg': 'image/svg+xml'}

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


# ----------------------------------------------------------------------------
# Small helpers.


def _esc(x: Any) -> str:
  return html.escape(str(x), quote=True)


def _data_uri(path: str) -> str:
  ext = os.path.splitext(path)[1].lower()
  with open(path, 'rb') as f:
    data = base64.b64encode(f.read()).decode('ascii')
  return f'data:{_MIME.get(ext, "application/octet-stream")};base64,{data}'


def _img(path: str, alt: str, caption: str = '') -> str:
  cap = f'<figcaption>{_esc(caption)}</figcaption>' if caption else ''
  return (f'<figure><img src="{_data_uri(path)}" alt="{_esc(alt)}">{cap}'
          '</figure>')


def _read_json(path: str, notes: list[str]) -> Any:
  if not os.path.isfile(path):
    return None
  try:
    with open(path, encoding='utf-8') as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    notes.append(f'skipped {path}: {e}')
    return None


def _float(v: Any) -> float:
  if isinstance(v, bool) or v is None:
    return math.nan
  try:
    return float(v)
  except (TypeError, ValueError):
    return math.nan


def _fmt(v: Any, digits: int = 4) -> str:
  if isinstance(v, bool) or v is None:
    return '—' if v is None else str(v)
  if isinstance(v, int):
    return f'{v:,}'
  if isinstance(v, float):
    return '—' if not math.isfinite(v) else f'{v:.{digits}g}'
  return str(v)


def _fmt_acc(v: Any) -> str:
  """Accuracy as a percentage (values <= 1 are fractions)."""
  f = _float(v)
  if not math.isfinite(f):
    return '—'
  return f'{100 * f:.2f}%' if abs(f) <= 1.0 else f'{f:.2f}%'


def _fmt_params(v: Any) -> str:
  f = _float(v)
  if not math.isfinite(f):
    return _fmt(v)
  if f >= 1e6:
    return f'{f / 1e6:.2f}M'
  if f >= 1e3:
    return f'{f / 1e3:.1f}k'
  return f'{f:.0f}'


def _fmt_seconds(v: float) -> str:
  if not math.isfinite(v):
    return '—'
  s = int(round(v))
  h, rem = divmod(s, 3600)
  m, s = divmod(rem, 60)
  return f'{h}h {m:02d}m' if h else f'{m}m {s:02d}s'


def read_metrics(path: str, notes: list[str]) -> list[dict[str, Any]]:
  """Rows of a metrics.jsonl; a re-logged epoch keeps its last row."""
  if not os.path.isfile(path):
    notes.append(f'no {path}: its curves are not drawn')
    return []
  try:
    rows = run_files.read_jsonl(path, notes)
  except OSError as e:
    notes.append(f'skipped {path}: {e}')
    return []
  if rows and all('epoch' in r for r in rows):
    by_epoch: dict[Any, dict[str, Any]] = {}
    for r in rows:
      by_epoch[r['epoch']] = r  # Resumed runs may repeat an epoch.
    rows = sorted(by_epoch.values(), key=lambda r: _float(r['epoch']))
  return rows


def _x_axis(rows: list[dict[str, Any]]) -> tuple[str, np.ndarray]:
  for key in ('epoch', 'step'):
    if rows and all(key in r for r in rows):
      return key, np.array([_float(r[key]) for r in rows])
  return 'row', np.arange(1, len(rows) + 1, dtype=np.float64)


def _series(rows: list[dict[str, Any]], key: str) -> np.ndarray | None:
  if not any(key in r for r in rows):
    return None
  y = np.array([_float(r.get(key)) for r in rows])
  return y if np.isfinite(y).any() else None


# ----------------------------------------------------------------------------
# Plots.

# (title, [(metric key, legend label)], y label, log scale)
_SEARCH_PANELS = (
    ('loss', [('train_loss', 'train'), ('val_loss', 'validation')], 'loss',
     False),
    ('accuracy', [('train_acc', 'train'), ('val_acc', 'validation')],
     'accuracy', False),
    ('alpha entropy (mean over edges)',
     [('alpha_entropy_normal', 'normal'), ('alpha_entropy_reduce', 'reduce')],
     'nats', False),
    ('learning rates', [('lr', 'weights lr'), ('alpha_lr', 'alpha lr')], 'lr',
     True),
    ('time per epoch', [('epoch_seconds', 'epoch')], 'seconds', False),
)

_EVAL_PANELS = (
    ('test accuracy', 'test_acc', 'accuracy'),
    ('train accuracy', 'train_acc', 'accuracy'),
    ('test loss', 'test_loss', 'loss'),
    ('train loss', 'train_loss', 'loss'),
)


def _plot_panels(panels: list[tuple[str, list[tuple[np.ndarray, np.ndarray,
                                                     str]], str, str, bool]],
                 path: str) -> str | None:
  """Draws [(title, [(x, y, label)], xlabel, ylabel, log)] in a grid."""
  panels = [p for p in panels if p[1]]
  if not panels:
    return None
  ncols = 2 if len(panels) == 4 else min(3, len(panels))
  nrows = math.ceil(len(panels) / ncols)
  fig = figures.new_figure((4.1 * ncols, 3.0 * nrows))
  axes = fig.subplots(nrows, ncols, squeeze=False)
  for ax, (title, lines, xlabel, ylabel, log) in zip(axes.flat, panels):
    for x, y, label in lines:
      ok = np.isfinite(y)
      ax.plot(x[ok], y[ok], marker='o' if ok.sum() < 25 else None,
              markersize=3, linewidth=1.6, label=label)
    if log and all((y[np.isfinite(y)] > 0).all() for _, y, _ in lines):
      ax.set_yscale('log')
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(lines) > 1:
      ax.legend(fontsize=9)
  for ax in list(axes.flat)[len(panels):]:
    ax.axis('off')
  fig.tight_layout()
  figures.save_figure(fig, path, dpi=100)
  return path


def plot_search_curves(rows: list[dict[str, Any]], path: str) -> str | None:
  """Loss / accuracy / alpha entropy / lr / time vs epoch; None if no data."""
  xkey, x = _x_axis(rows)
  panels = []
  for title, keys, ylabel, log in _SEARCH_PANELS:
    lines = []
    for key, label in keys:
      y = _series(rows, key)
      if y is not None:
        lines.append((x, y, label))
    panels.append((title, lines, xkey, ylabel, log))
  return _plot_panels(panels, path)


def plot_eval_curves(runs: dict[str, list[dict[str, Any]]],
                     path: str) -> str | None:
  """Augment vs random: accuracy and loss vs epoch; None if no data."""
  panels = []
  for title, key, ylabel in _EVAL_PANELS:
    lines = []
    xkey = 'epoch'
    for name, rows in runs.items():
      xkey, x = _x_axis(rows)
      y = _series(rows, key)
      if y is not None:
        lines.append((x, y, name))
    panels.append((title, lines, xkey, ylabel, False))
  return _plot_panels(panels, path)


# ----------------------------------------------------------------------------
# Sections.


def _section(title: str, body: str, anchor: str) -> str:
  return f'<section id="{anchor}"><h2>{_esc(title)}</h2>{body}</section>'


def _card(key: str, value: str, detail: str = '') -> str:
  d = f'<div class="d">{_esc(detail)}</div>' if detail else ''
  return (f'<div class="card"><div class="k">{_esc(key)}</div>'
          f'<div class="v">{_esc(value)}</div>{d}</div>')


def _count_ops(pairs: Sequence[tuple[str, int]], op: str) -> int:
  return sum(1 for o, _ in pairs if o == op)


def _nb201_edges(arch: str) -> list[tuple[str, int]]:
  """(op, input) per edge of an arch string, node by node; [] if it does not parse."""
  from darts_jax import nb201  # pylint: disable=g-import-not-at-top
  try:
    parsed = nb201.parse_arch(arch)
  except UserError:
    return []
  return [edge for node in parsed.nodes for edge in node]


def _nb201_cell_summary(arch: str) -> str:
  """'1←0 nor_conv_3x3, 2←0 ..., ...' for an arch string."""
  edges = _nb201_edges(arch)
  return ', '.join(f'{dst}←{src} {op}'
                   for (dst, _), (op, src) in zip(alpha_plots.nb201_edges(), edges))


def _summary_cards(rows: list[dict[str, Any]], g: Any,
                   results: dict[str, Any], nb201_arch: str | None = None) -> str:
  cards = []
  if rows:
    xkey, x = _x_axis(rows)
    if xkey == 'epoch':
      cards.append(_card('search epochs', _fmt(int(np.nanmax(x)))))
    val = _series(rows, 'val_acc')
    if val is not None:
      best = int(np.nanargmax(val))
      cards.append(_card('final val acc', _fmt_acc(val[np.isfinite(val)][-1])))
      cards.append(_card('best val acc', _fmt_acc(val[best]),
                         f'{xkey} {_fmt(x[best])}'))
    secs = _series(rows, 'epoch_seconds')
    if secs is not None:
      cards.append(_card('search time', _fmt_seconds(float(np.nansum(secs)))))
  for name, _ in EVAL_RUNS:
    res = results.get(name)
    if isinstance(res, dict) and 'test_acc' in res:
      detail = (f'{_fmt_params(res["params"])} params' if 'params' in res
                else '')
      cards.append(_card(f'{name} test acc', _fmt_acc(res['test_acc']),
                         detail))
  if g is not None:
    cards.append(_card('skip_connect in normal cell',
                       str(_count_ops(g.normal, 'skip_connect')),
                       f'of {len(g.normal)} edges'))
  elif nb201_arch and (edges := _nb201_edges(nb201_arch)):
    cards.append(_card('skip_connect in the cell', str(_count_ops(edges, 'skip_connect')),
                       f'of {len(edges)} edges'))
  return f'<div class="cards">{"".join(cards)}</div>' if cards else ''


def _results_section(results: dict[str, Any],
                     eval_rows: dict[str, list[dict[str, Any]]],
                     tmp: str, notes: list[str]) -> str:
  body = []
  table = []
  for name, desc in EVAL_RUNS:
    res = results.get(name)
    if not isinstance(res, dict):
      continue
    extra = ', '.join(f'{k}={_fmt(v)}' for k, v in res.items()
                      if k not in ('test_acc', 'params') and
                      not isinstance(v, (dict, list)))
    table.append((name, desc, _fmt_acc(res.get('test_acc')),
                  _fmt_params(res.get('params')), extra))
  if table:
    has_extra = any(row[4] for row in table)
    head = ('<tr><th class="l">run</th><th class="l">cell</th>'
            '<th>test acc</th><th>params</th>'
            + ('<th class="l">other</th>' if has_extra else '') + '</tr>')
    cells = ''.join(
        f'<tr><td class="l">{_esc(n)}</td><td class="l">{_esc(d)}</td>'
        f'<td>{_esc(a)}</td><td>{_esc(p)}</td>'
        + (f'<td class="l">{_esc(x)}</td>' if has_extra else '') + '</tr>'
        for n, d, a, p, x in table)
    body.append(f'<table>{head}{cells}</table>')
  if eval_rows:
    try:
      p = plot_eval_curves(eval_rows, os.path.join(tmp, 'eval_curves.svg'))
      if p:
        body.append(_img(p, 'evaluation curves',
                         'training from scratch: ' + ', '.join(eval_rows)))
    except Exception as e:  # pylint: disable=broad-except
      notes.append(f'evaluation curves not drawn: {type(e).__name__}: {e}')
  summary = results.get('pipeline')
  if summary is not None:
    body.append('<details><summary>result.json</summary><pre>'
                f'{_esc(json.dumps(summary, indent=2, sort_keys=True))}</pre>'
                '</details>')
  return _section('Evaluation', ''.join(body), 'evaluation') if body else ''


def _cell_summary(pairs: Sequence[tuple[str, int]]) -> str:
  """'2←0 sep_conv_3x3, 2←1 skip_connect, ...' (state labels as elsewhere)."""
  return ', '.join(f'{k // 2 + 2}←{src} {op}'
                   for k, (op, src) in enumerate(pairs))


def _nb201_history_section(records: list[dict[str, Any]]) -> str:
  rows, prev = [], None
  for rec in records:
    arch = rec['genotype']['nb201_arch']
    edges = _nb201_edges(arch)
    changed = ('—' if prev is None else
               str(sum(1 for a, b in zip(edges, prev) if a != b)))
    cls = ' class="changed"' if prev is not None and edges != prev else ''
    rows.append(f'<tr{cls}><td>{_esc(_fmt(rec.get("epoch")))}</td><td>{changed}</td>'
                f'<td>{_count_ops(edges, "skip_connect")}</td>'
                f'<td class="l">{_esc(arch)}</td></tr>')
    prev = edges
  if not rows:
    return ''
  table = ('<table><tr><th>epoch</th><th>edges changed</th><th>skip_connect</th>'
           '<th class="l">cell (NAS-Bench-201 arch string)</th></tr>' + ''.join(rows)
           + '</table>')
  return _section(
      'Cell per epoch',
      '<p class="sub">derived cell after each epoch; highlighted rows changed. '
      'Parameter-free ops (skip_connect, pooling) taking over is the DARTS collapse '
      'NAS-Bench-201 measures.</p>'
      f'<details{" open" if len(rows) <= 30 else ""}><summary>table '
      f'({len(rows)} epochs)</summary>{table}</details>', 'history')


def _history_section(path: str, notes: list[str]) -> str:
  if not os.path.isfile(path):
    notes.append(f'no {path}: genotype history not shown')
    return ''
  records = run_files.read_jsonl(path, notes)
  nb201 = [r for r in records if isinstance(r.get('genotype'), dict)
           and isinstance(r['genotype'].get('nb201_arch'), str)]
  if nb201:
    return _nb201_history_section(nb201)
  rows = []
  prev = None
  for rec in records:
    try:
      g = run_files.genotype_from_record(rec.get('genotype'))
    except UserError as e:
      notes.append(f'{path}: epoch {rec.get("epoch")}: {e}')
      continue
    changes = ['—', '—']
    if prev is not None:
      changes = [str(sum(1 for a, b in zip(getattr(g, c), getattr(prev, c))
                         if a != b)) for c in ('normal', 'reduce')]
    cls = ' class="changed"' if prev is not None and g != prev else ''
    rows.append(
        f'<tr{cls}><td>{_esc(_fmt(rec.get("epoch")))}</td>'
        f'<td>{changes[0]}</td><td>{changes[1]}</td>'
        f'<td>{_count_ops(g.normal, "skip_connect")}</td>'
        f'<td>{_count_ops(g.reduce, "skip_connect")}</td>'
        f'<td class="l">{_esc(_cell_summary(g.normal))}'
        '</td></tr>')
    prev = g
  if not rows:
    return ''
  table = ('<table><tr><th>epoch</th><th>normal edges changed</th>'
           '<th>reduce edges changed</th><th>skip in normal</th>'
           '<th>skip in reduce</th><th class="l">normal cell (node←input op)'
           '</th></tr>' + ''.join(rows) + '</table>')
  return _section(
      'Genotype per epoch',
      '<p class="sub">derived genotype after each epoch; highlighted rows '
      'changed. Many skip_connect edges in the normal cell is the known DARTS '
      'failure mode.</p>'
      f'<details{" open" if len(rows) <= 30 else ""}><summary>table '
      f'({len(rows)} epochs)</summary>{table}</details>', 'history')


def _safe(notes: list[str], what: str, fn: Callable[[], str]) -> str:
  """Runs one section builder; a failure becomes a note, not a crash."""
  try:
    return fn()
  except Exception as e:  # pylint: disable=broad-except
    logging.warning('report: %s failed: %s: %s', what, type(e).__name__, e)
    notes.append(f'{what} failed: {type(e).__name__}: {e}')
    return ''


# ----------------------------------------------------------------------------
# The report.


def build_report_html(workdir: str | os.PathLike[str]) -> str:
  """The report page for `workdir` as a string (see `write_report`)."""
  rf = run_files.find_run_files(workdir)  # UserError if not a directory.
  workdir, search_dir = rf.workdir, rf.search_dir
  notes = list(rf.notes)
  g = rf.genotype
  rows = read_metrics(os.path.join(search_dir, 'metrics.jsonl'), notes)

  results: dict[str, Any] = {}
  eval_rows: dict[str, list[dict[str, Any]]] = {}
  for name, _ in EVAL_RUNS:
    d = os.path.join(workdir, name)
    if not os.path.isdir(d):
      continue
    res = _read_json(os.path.join(d, 'result.json'), notes)
    if res is not None:
      results[name] = res
    else:
      notes.append(f'no {name}/result.json')
    r = read_metrics(os.path.join(d, 'metrics.jsonl'), notes)
    if r:
      eval_rows[name] = r
  if os.path.abspath(search_dir) != os.path.abspath(workdir):
    summary = _read_json(os.path.join(workdir, 'result.json'), notes)
    if summary is not None:
      results['pipeline'] = summary
      if isinstance(summary, dict):
        for name, _ in EVAL_RUNS:  # Fall back to the summary's entries.
          if name not in results and isinstance(summary.get(name), dict):
            results[name] = summary[name]

  configs = []
  for d in dict.fromkeys([workdir, search_dir] + [
      os.path.join(workdir, n) for n, _ in EVAL_RUNS]):
    cfg = _read_json(os.path.join(d, 'config.json'), notes)
    if cfg is not None:
      configs.append((os.path.relpath(os.path.join(d, 'config.json'),
                                      workdir), cfg))
  if not configs:
    notes.append(f'no config.json in {workdir}')

  parts = []
  with tempfile.TemporaryDirectory(prefix='darts_report_') as tmp:
    parts.append(_safe(notes, 'summary',
                       lambda: _summary_cards(rows, g, results, rf.nb201_arch)))
    parts.append(_safe(notes, 'evaluation', lambda: _results_section(
        results, eval_rows, tmp, notes)))

    def curves() -> str:
      if not rows:
        return ''
      p = plot_search_curves(rows, os.path.join(tmp, 'search_curves.svg'))
      return _section('Search curves', _img(p, 'search curves'),
                      'curves') if p else ''
    parts.append(_safe(notes, 'search curves', curves))

    def cells() -> str:
      if rf.nb201_arch:
        paths = cell_drawing.draw_nb201_arch(rf.nb201_arch, tmp, prefix='cell_')
        svg, png = (os.path.join(tmp, f'cell_cell.{ext}') for ext in ('svg', 'png'))
        pic = svg if svg in paths and os.path.isfile(svg) else png
        return _section(
            'Final cell',
            f'<div class="cells">{_img(pic, "NAS-Bench-201 cell")}</div>'
            f'<p class="sub">NAS-Bench-201 cell (node←input op): '
            f'{_esc(_nb201_cell_summary(rf.nb201_arch))}; from '
            f'{_esc(rf.genotype_source)}</p><pre id="genotype">{_esc(rf.nb201_arch)}</pre>',
            'cells')
      if g is None:
        return ''
      paths = cell_drawing.draw_genotype(g, tmp, prefix='cell_')
      figs = []
      for cell in figures.CELLS:
        svg = os.path.join(tmp, f'cell_{cell}.svg')
        png = os.path.join(tmp, f'cell_{cell}.png')
        pic = svg if svg in paths and os.path.isfile(svg) else png
        figs.append(_img(pic, f'{cell} cell'))
      text = genotypes_lib.genotype_to_text(g)
      return _section(
          'Final cells',
          f'<div class="cells">{"".join(figs)}</div>'
          f'<p class="sub">from {_esc(rf.genotype_source)}</p>'
          f'<pre id="genotype">{_esc(text)}</pre>', 'cells')
    parts.append(_safe(notes, 'cell pictures', cells))

    def alphas() -> str:
      body = []
      if rf.final_alphas:
        n, r, prims = alpha_plots.load_alphas(rf.final_alphas)
        p = alpha_plots.plot_alpha_heatmap(
            n, r, prims, os.path.join(tmp, 'alphas.png'))
        body.append(_img(p, 'alpha heat map',
                         f'final architecture weights '
                         f'({os.path.basename(rf.final_alphas)}): '
                         'softmax over ops per edge; red boxes are kept'))
      if rf.epoch_alphas:
        p = alpha_plots.plot_alpha_evolution(
            rf.epoch_alphas, os.path.join(tmp, 'alpha_evolution.png'))
        body.append(_img(p, 'alpha evolution',
                         f'{len(rf.epoch_alphas)} epochs of alphas'))
      return (_section('Architecture weights', ''.join(body), 'alphas')
              if body else '')
    parts.append(_safe(notes, 'alpha plots', alphas))

  parts.append(_safe(notes, 'genotype history', lambda: _history_section(
      os.path.join(search_dir, 'genotypes.jsonl'), notes)))
  if configs:
    body = ''.join(
        f'<details{" open" if k == 0 else ""}><summary>{_esc(name)}</summary>'
        f'<pre>{_esc(json.dumps(cfg, indent=2, sort_keys=True))}</pre>'
        '</details>' for k, (name, cfg) in enumerate(configs))
    parts.append(_section('Config', body, 'config'))
  if notes:
    parts.append(_section(
        'Notes', '<ul class="notes">' + ''.join(
            f'<li>{_esc(n)}</li>' for n in dict.fromkeys(notes)) + '</ul>',
        'notes'))

  title = f'DARTS search report: {os.path.basename(os.path.abspath(workdir))}'
  now = datetime.datetime.now().strftime('%Y-%m-%d %H:%M')
  return (
      '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
      '<meta name="viewport" content="width=device-width, initial-scale=1">'
      f'<title>{_esc(title)}</title><style>{_CSS}</style></head><body><main>'
      f'<h1>{_esc(title)}</h1><div class="sub">{_esc(os.path.abspath(workdir))}'
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


if __name__ == '__main__':
  from darts_jax import cli  # pylint: disable=g-import-not-at-top
  _define_flags()
  cli.run(main)

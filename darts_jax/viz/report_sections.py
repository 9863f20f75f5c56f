"""The pieces of the HTML run report (`report`): formatting, curves and sections.

Everything space-specific comes from the search space's cell graphs
(`space.cell_graphs(arch)`): the counts of skip_connect and parameter-free ops per cell,
the edges changed from one epoch to the next, the cells' summaries.
"""

from __future__ import annotations

import base64
import collections
import html
import json
import math
import os
from typing import Any, Callable, Sequence

from absl import logging
import numpy as np

from darts_jax.errors import UserError
from darts_jax.viz import figures
from darts_jax.viz import run_files

EVAL_RUNS = (('augment', 'searched cell (trained from scratch)'),
             ('random', 'random cell baseline'))

_MIME = {'.png': 'image/png', '.svg': 'image/svg+xml'}


# ----------------------------------------------------------------------------
# Small helpers.


def esc(x: Any) -> str:
  return html.escape(str(x), quote=True)


def data_uri(path: str) -> str:
  ext = os.path.splitext(path)[1].lower()
  with open(path, 'rb') as f:
    data = base64.b64encode(f.read()).decode('ascii')
  return f'data:{_MIME.get(ext, "application/octet-stream")};base64,{data}'


def img(path: str, alt: str, caption: str = '') -> str:
  cap = f'<figcaption>{esc(caption)}</figcaption>' if caption else ''
  return f'<figure><img src="{data_uri(path)}" alt="{esc(alt)}">{cap}</figure>'


def read_json(path: str, notes: list[str]) -> Any:
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


def fmt(v: Any, digits: int = 4) -> str:
  if isinstance(v, bool) or v is None:
    return '—' if v is None else str(v)
  if isinstance(v, int):
    return f'{v:,}'
  if isinstance(v, float):
    return '—' if not math.isfinite(v) else f'{v:.{digits}g}'
  return str(v)


def fmt_acc(v: Any) -> str:
  """Accuracy as a percentage (values <= 1 are fractions)."""
  f = _float(v)
  if not math.isfinite(f):
    return '—'
  return f'{100 * f:.2f}%' if abs(f) <= 1.0 else f'{f:.2f}%'


def fmt_params(v: Any) -> str:
  f = _float(v)
  if not math.isfinite(f):
    return fmt(v)
  if f >= 1e6:
    return f'{f / 1e6:.2f}M'
  if f >= 1e3:
    return f'{f / 1e3:.1f}k'
  return f'{f:.0f}'


def fmt_seconds(v: float) -> str:
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


def section(title: str, body: str, anchor: str) -> str:
  return f'<section id="{anchor}"><h2>{esc(title)}</h2>{body}</section>'


def safe(notes: list[str], what: str, fn: Callable[[], str]) -> str:
  """Runs one section builder; a failure becomes a note, not a crash."""
  try:
    return fn()
  except Exception as e:  # pylint: disable=broad-except
    logging.warning('report: %s failed: %s: %s', what, type(e).__name__, e)
    notes.append(f'{what} failed: {type(e).__name__}: {e}')
    return ''


# ----------------------------------------------------------------------------
# Plots.

_ENTROPY_PREFIX = 'alpha_entropy_'

_EVAL_PANELS = (
    ('test accuracy', 'test_acc', 'accuracy'),
    ('train accuracy', 'train_acc', 'accuracy'),
    ('test loss', 'test_loss', 'loss'),
    ('train loss', 'train_loss', 'loss'),
)


def _search_panels(rows: list[dict[str, Any]]):
  """(title, [(metric key, legend label)], y label, log scale); the alpha entropy of
  every cell type the rows hold (`alpha_entropy_<cell type>`)."""
  entropies = [k for k in dict.fromkeys(k for r in rows for k in r)
               if k.startswith(_ENTROPY_PREFIX)]
  return (
      ('loss', [('train_loss', 'train'), ('val_loss', 'validation')], 'loss', False),
      ('accuracy', [('train_acc', 'train'), ('val_acc', 'validation')], 'accuracy', False),
      ('alpha entropy (mean over edges)',
       [(k, k[len(_ENTROPY_PREFIX):]) for k in entropies], 'nats', False),
      ('learning rates', [('lr', 'weights lr'), ('alpha_lr', 'alpha lr')], 'lr', True),
      ('time per epoch', [('epoch_seconds', 'epoch')], 'seconds', False),
  )


def _plot_panels(panels: list[tuple[str, list[tuple[np.ndarray, np.ndarray, str]],
                                    str, str, bool]], path: str) -> str | None:
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
  for title, keys, ylabel, log in _search_panels(rows):
    lines = [(x, y, label) for key, label in keys
             if (y := _series(rows, key)) is not None]
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


def _card(key: str, value: str, detail: str = '') -> str:
  d = f'<div class="d">{esc(detail)}</div>' if detail else ''
  return (f'<div class="card"><div class="k">{esc(key)}</div>'
          f'<div class="v">{esc(value)}</div>{d}</div>')


def _free_ops(space: Any) -> frozenset[str]:
  return frozenset(getattr(space, 'parameter_free_ops', ()) or ())


def summary_cards(rows: list[dict[str, Any]], space: Any, graphs: Sequence[Any],
                  results: dict[str, Any]) -> str:
  cards = []
  if rows:
    xkey, x = _x_axis(rows)
    if xkey == 'epoch':
      cards.append(_card('search epochs', fmt(int(np.nanmax(x)))))
    val = _series(rows, 'val_acc')
    if val is not None:
      best = int(np.nanargmax(val))
      cards.append(_card('final val acc', fmt_acc(val[np.isfinite(val)][-1])))
      cards.append(_card('best val acc', fmt_acc(val[best]), f'{xkey} {fmt(x[best])}'))
    secs = _series(rows, 'epoch_seconds')
    if secs is not None:
      cards.append(_card('search time', fmt_seconds(float(np.nansum(secs)))))
  for name, _ in EVAL_RUNS:
    res = results.get(name)
    if isinstance(res, dict) and 'test_acc' in res:
      detail = f'{fmt_params(res["params"])} params' if 'params' in res else ''
      cards.append(_card(f'{name} test acc', fmt_acc(res['test_acc']), detail))
  free = _free_ops(space)
  for g in graphs:
    of = f'of {len(g.op_edges)} edges'
    cards.append(_card(f'skip_connect in {g.title}', str(g.count('skip_connect')), of))
    if free:
      cards.append(_card(f'parameter-free ops in {g.title}', str(g.count(free)),
                         f'{of} ({", ".join(sorted(free))})'))
  return f'<div class="cards">{"".join(cards)}</div>' if cards else ''


def results_section(results: dict[str, Any], eval_rows: dict[str, list[dict[str, Any]]],
                    tmp: str, notes: list[str]) -> str:
  body = []
  table = []
  for name, desc in EVAL_RUNS:
    res = results.get(name)
    if not isinstance(res, dict):
      continue
    extra = ', '.join(f'{k}={fmt(v)}' for k, v in res.items()
                      if k not in ('test_acc', 'params') and
                      not isinstance(v, (dict, list)))
    table.append((name, desc, fmt_acc(res.get('test_acc')),
                  fmt_params(res.get('params')), extra))
  if table:
    has_extra = any(row[4] for row in table)
    head = ('<tr><th class="l">run</th><th class="l">cell</th>'
            '<th>test acc</th><th>params</th>'
            + ('<th class="l">other</th>' if has_extra else '') + '</tr>')
    cells = ''.join(
        f'<tr><td class="l">{esc(n)}</td><td class="l">{esc(d)}</td>'
        f'<td>{esc(a)}</td><td>{esc(p)}</td>'
        + (f'<td class="l">{esc(x)}</td>' if has_extra else '') + '</tr>'
        for n, d, a, p, x in table)
    body.append(f'<table>{head}{cells}</table>')
  if eval_rows:
    try:
      p = plot_eval_curves(eval_rows, os.path.join(tmp, 'eval_curves.svg'))
      if p:
        body.append(img(p, 'evaluation curves',
                        'training from scratch: ' + ', '.join(eval_rows)))
    except Exception as e:  # pylint: disable=broad-except
      notes.append(f'evaluation curves not drawn: {type(e).__name__}: {e}')
  summary = results.get('pipeline')
  if summary is not None:
    body.append('<details><summary>result.json</summary><pre>'
                f'{esc(json.dumps(summary, indent=2, sort_keys=True))}</pre>'
                '</details>')
  return section('Evaluation', ''.join(body), 'evaluation') if body else ''


def _edge_set(graph: Any) -> collections.Counter:
  return collections.Counter((e.src, e.dst, e.op) for e in graph.op_edges)


def edges_changed(graph: Any, previous: Any) -> int:
  """How many op edges differ between two versions of a cell (an edge moved to another
  input, or given another op, counts once)."""
  now, before = _edge_set(graph), _edge_set(previous)
  return max(sum((now - before).values()), sum((before - now).values()))


def history_section(path: str, notes: list[str]) -> str:
  """The derived architecture per epoch (genotypes.jsonl): per cell graph the edges
  changed since the previous epoch and the skip_connect count, and the first cell."""
  if not os.path.isfile(path):
    notes.append(f'no {path}: genotype history not shown')
    return ''
  rows, prev, names, space = [], None, None, None
  for rec in run_files.read_jsonl(path, notes):
    try:
      space, arch = run_files.arch_from_record(rec, space)
      graphs = tuple(space.cell_graphs(arch))
    except UserError as e:
      notes.append(f'{path}: epoch {rec.get("epoch")}: {e}')
      continue
    if names is None:
      names = [(g.name, g.title) for g in graphs]
    if [g.name for g in graphs] != [n for n, _ in names]:
      notes.append(f'{path}: epoch {rec.get("epoch")}: other cells than the first '
                   'record; skipped')
      continue
    changes = (['—'] * len(graphs) if prev is None else
               [str(edges_changed(g, p)) for g, p in zip(graphs, prev)])
    changed = prev is not None and any(c != '0' for c in changes)
    cls = ' class="changed"' if changed else ''
    rows.append(f'<tr{cls}><td>{esc(fmt(rec.get("epoch")))}</td>'
                + ''.join(f'<td>{c}</td>' for c in changes)
                + ''.join(f'<td>{g.count("skip_connect")}</td>' for g in graphs)
                + f'<td class="l">{esc(graphs[0].summary() if graphs else "")}</td></tr>')
    prev = graphs
  if not rows:
    return ''
  first = names[0][1] if names else 'cell'
  table = ('<table><tr><th>epoch</th>'
           + ''.join(f'<th>{esc(n)} edges changed</th>' for n, _ in names)
           + ''.join(f'<th>skip_connect in {esc(n)}</th>' for n, _ in names)
           + f'<th class="l">{esc(first)} (node←input op)</th></tr>'
           + ''.join(rows) + '</table>')
  return section(
      f'{"Cell" if len(names) == 1 else "Cells"} per epoch',
      '<p class="sub">derived architecture after each epoch; highlighted rows changed. '
      'Parameter-free ops (skip_connect, pooling) taking over the cells is the known '
      'DARTS failure mode.</p>'
      f'<details{" open" if len(rows) <= 30 else ""}><summary>table '
      f'({len(rows)} epochs)</summary>{table}</details>', 'history')

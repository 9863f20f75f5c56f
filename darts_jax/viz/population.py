"""The report of a population (config.seeds): per seed, the spread, the comparison.

A population search's workdir holds `seed_<s>/` (each a search workdir with its own
report) and a result.json with `per_seed`; a population pipeline's holds `search/`,
`augment/seed_<s>/`, `random/seed_<s>/` and a result.json with the test accuracies of
both kinds of cell and their paired test. The page shows the per-seed table, the means
+- std, the agreement of the derived architectures, and the distributions (searched
against random cells, each seed's pair joined by a line).
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import numpy as np

from darts_jax.viz import figures
from darts_jax.viz.report_sections import esc, fmt, img, section


def is_population(summary: Any) -> bool:
  return isinstance(summary, dict) and isinstance(summary.get('per_seed'), list)


def plot_distributions(rows: list[dict], path: str) -> str | None:
  """Test accuracy of the searched and random cells per seed (or the search's validation
  accuracy when nothing was trained), pairs joined."""
  kinds = [(k, label) for k, label in (('test_acc', 'searched'), ('random_test_acc', 'random'))
           if all(k in r for r in rows)] or [('val_acc', 'search (validation)')]
  if not all(kinds[0][0] in r and r[kinds[0][0]] is not None for r in rows):
    return None
  fig = figures.new_figure((1.6 + 1.5 * len(kinds), 3.4))
  ax = fig.add_axes((0.25, 0.14, 0.7, 0.74))
  values = np.asarray([[r[k] for k, _ in kinds] for r in rows], np.float64)
  jitter = np.linspace(-0.08, 0.08, len(rows)) if len(rows) > 1 else np.zeros(1)
  for i in range(len(rows)):
    ax.plot(np.arange(len(kinds)) + jitter[i], values[i], color='#9aa4ae', linewidth=1,
            marker='o', markersize=5, markerfacecolor='#0b57d0', markeredgecolor='none')
  means = values.mean(axis=0)
  ax.scatter(np.arange(len(kinds)), means, marker='_', s=900, color='#d62728', zorder=3)
  ax.set_xticks(range(len(kinds)))
  ax.set_xticklabels([label for _, label in kinds])
  ax.set_xlim(-0.5, len(kinds) - 0.5)
  ax.set_ylabel('accuracy')
  ax.set_title(f'{len(rows)} seeds (red: mean)', fontsize=10)
  ax.grid(axis='y', alpha=0.3)
  figures.save_figure(fig, path, tight=False)
  return path


def _table(rows: list[dict], link_prefix: str) -> str:
  columns = [c for c in ('seed', 'val_acc', 'search_val_acc', 'test_acc', 'random_test_acc',
                         'params', 'random_params') if all(c in r for r in rows)]
  head = ''.join(f'<th>{esc(c)}</th>' for c in columns) + '<th class="l">architecture</th>'
  body = []
  for r in rows:
    cells = ''.join(f'<td>{esc(fmt(r[c]))}</td>' for c in columns)
    report = f'{link_prefix}seed_{r["seed"]}/report.html'
    body.append(f'<tr>{cells}<td class="l"><a href="{esc(report)}">report</a> '
                f'<code>{esc(r.get("genotype", ""))}</code></td></tr>')
  return f'<table><tr>{head}</tr>{"".join(body)}</table>'


def _aggregates(summary: dict) -> str:
  items = []
  for key in ('val_acc', 'search_val_acc', 'test_acc', 'random_test_acc', 'params',
              'random_params'):
    if f'{key}_mean' in summary:
      items.append(f'<li>{esc(key)}: {esc(fmt(summary[key + "_mean"]))} +- '
                   f'{esc(fmt(summary[key + "_std"]))}</li>')
  test = summary.get('searched_vs_random')
  if test:
    p = test.get('p_value')
    items.append(f'<li>searched - random: {esc(fmt(test["mean_difference"]))} (searched '
                 f'better in {test["searched_better"]} of {test["n"]} seeds; {esc(test["test"])}'
                 f': p = {esc("n/a" if p is None else fmt(p))})</li>')
  verdict = f'<p><b>{esc(summary["verdict"])}</b></p>' if 'verdict' in summary else ''
  return verdict + f'<ul>{"".join(items)}</ul>'


def _agreement(summary: dict) -> str:
  rows = ''.join(
      f'<tr><td class="l">{esc(cell)}</td><td>{esc(fmt(s["edges_per_cell"]))}</td>'
      f'<td>{s["edges_in_every_seed"]}</td><td>{s["edges_and_ops_in_every_seed"]}</td>'
      f'<td>{esc(fmt(s["mean_pairwise_op_agreement"]))}</td></tr>'
      for cell, s in summary.get('agreement', {}).items())
  if not rows:
    return ''
  return ('<table><tr><th class="l">cell</th><th>edges</th><th>edges in every seed</th>'
          '<th>edges with their op in every seed</th><th>mean pairwise overlap</th></tr>'
          f'{rows}</table>')


def build_population_html(workdir: str, summary: dict, css: str) -> str:
  """The page of a population search or pipeline whose result.json is `summary`."""
  rows = summary['per_seed']
  pipeline = os.path.isdir(os.path.join(workdir, 'search'))
  parts = [section('Seeds', _table(rows, 'search/' if pipeline else ''), 'seeds'),
           section('Spread', _aggregates(summary), 'spread')]
  with tempfile.TemporaryDirectory(prefix='darts_population_') as tmp:
    path = plot_distributions(rows, os.path.join(tmp, 'distributions.svg'))
    if path:
      parts.append(section('Distributions', img(path, 'distributions'), 'distributions'))
  agreement = _agreement(summary)
  if agreement:
    parts.append(section('Agreement of the derived architectures', agreement, 'agreement'))
  parts.append(section('result.json', f'<pre>{esc(json.dumps(summary, indent=2))}</pre>',
                       'result'))
  title = f'DARTS population report: {os.path.basename(os.path.abspath(workdir))}'
  return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
          f'<title>{esc(title)}</title><style>{css}</style></head><body><main>'
          f'<h1>{esc(title)}</h1><div class="sub">{esc(os.path.abspath(workdir))} · '
          f'{len(rows)} seeds</div>' + ''.join(parts) + '</main></body></html>\n')

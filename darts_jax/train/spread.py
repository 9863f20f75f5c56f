"""Results over seeds: means and standard deviations, the agreement of the derived
architectures, and the paired comparison of searched against random cells."""

from __future__ import annotations

import itertools
import math
from typing import Any, Sequence

import numpy as np


def mean_std(values: Sequence[float]) -> tuple[float, float]:
  """Mean and sample standard deviation (ddof 1; 0 for one value), as papers report."""
  v = np.asarray(values, np.float64)
  return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def mean_line(lines: Sequence[dict]) -> dict:
  """The seeds' mean of every numeric field of their epoch lines, and val_acc's std."""
  out = {}
  for key in lines[0]:
    values = [line[key] for line in lines]
    if all(isinstance(v, (int, float)) and v is not None for v in values):
      out[key] = float(np.mean(values))
  if 'val_acc' in out:
    out['val_acc_std'] = mean_std([line['val_acc'] for line in lines])[1]
  return out


def agreement(space, archs: Sequence[Any]) -> dict:
  """How far the seeds' architectures agree, per cell: the edges (input -> node) and the
  edges with their op that every architecture has, and the mean pairwise overlap
  (Jaccard) of their edges with ops."""
  per_cell = {}
  graphs = [space.cell_graphs(a) for a in archs]
  for k, cell in enumerate(graphs[0]):
    with_ops = [{(e.src, e.dst, e.op) for e in g[k].op_edges} for g in graphs]
    edges = [{(e.src, e.dst) for e in g[k].op_edges} for g in graphs]
    pairs = list(itertools.combinations(range(len(archs)), 2))
    jaccard = [len(with_ops[i] & with_ops[j]) / max(len(with_ops[i] | with_ops[j]), 1)
               for i, j in pairs]
    per_cell[cell.name] = {
        'edges_per_cell': float(np.mean([len(s) for s in with_ops])),
        'edges_in_every_seed': len(set.intersection(*edges)),
        'edges_and_ops_in_every_seed': len(set.intersection(*with_ops)),
        'mean_pairwise_op_agreement': float(np.mean(jaccard)) if jaccard else 1.0,
    }
  return per_cell


def paired_test(searched: Sequence[float], random: Sequence[float]) -> dict:
  """Searched against random cells, paired by seed: the mean difference, a two-sided
  paired t-test (scipy.stats.ttest_rel) and how many seeds the searched cell won."""
  a, b = np.asarray(searched, np.float64), np.asarray(random, np.float64)
  diff = a - b
  result = {'n': int(len(a)), 'mean_difference': float(diff.mean()),
            'searched_better': int(np.sum(diff > 0)), 'random_better': int(np.sum(diff < 0)),
            'test': 'paired t-test, two-sided'}
  if len(a) < 2 or np.all(diff == diff[0]):
    result['p_value'] = None  # Undefined: one pair, or no variation in the differences.
    return result
  from scipy import stats  # pylint: disable=g-import-not-at-top
  t, p = stats.ttest_rel(a, b)
  result.update(t=float(t), p_value=float(p))
  return result


def verdict(test: dict, alpha: float = 0.05) -> str:
  """One plain line on what a paired test shows."""
  p = test.get('p_value')
  if p is None or math.isnan(p):
    return f'no test possible over {test["n"]} seed(s)'
  if p < alpha and test['mean_difference'] > 0:
    return f'searched cells beat random ones (p = {p:.3g}, {test["n"]} seeds)'
  if p < alpha:
    return f'random cells beat the searched ones (p = {p:.3g}, {test["n"]} seeds)'
  return (f'no significant difference between searched and random cells on this data '
          f'(p = {p:.3g}, {test["n"]} seeds)')


def population_summary(space, results: dict, method: str, epochs: int) -> dict:
  """result.json of a population search: per seed, the aggregates, the agreement.

  `results`: seed -> (architecture, that seed's result.json fields).
  """
  seeds = list(results)
  val = [results[s][1]['val_acc'] for s in seeds]
  summary = {'method': method, 'epochs': epochs, 'seeds': seeds,
             'per_seed': [{'seed': s, **results[s][1]} for s in seeds],
             'genotypes': [results[s][1]['genotype'] for s in seeds]}
  if all(v is not None for v in val):
    summary['val_acc_mean'], summary['val_acc_std'] = mean_std(val)
  summary['agreement'] = agreement(space, [results[s][0] for s in seeds])
  return summary


def pipeline_summary(rows: Sequence[dict], search_agreement: dict) -> dict:
  """result.json of a population pipeline: per seed, the means +- std, the paired test."""
  summary = {'seeds': [r['seed'] for r in rows], 'per_seed': list(rows),
             'agreement': search_agreement}
  for key in ('search_val_acc', 'test_acc', 'params', 'random_test_acc', 'random_params'):
    if all(key in r and r[key] is not None for r in rows):
      summary[f'{key}_mean'], summary[f'{key}_std'] = mean_std([r[key] for r in rows])
  if all('random_test_acc' in r for r in rows):
    test = paired_test([r['test_acc'] for r in rows], [r['random_test_acc'] for r in rows])
    summary['searched_vs_random'] = test
    summary['verdict'] = verdict(test)
  return summary


def printable(summary: dict) -> dict:
  """What the command prints of a population's summary: a table and the aggregates."""
  rows = summary['per_seed']
  columns = [c for c in ('seed', 'search_val_acc', 'test_acc', 'random_test_acc', 'params',
                         'random_params') if all(c in r for r in rows)]
  lines = ['  '.join(f'{c:>15}' for c in columns)]
  for r in rows:
    lines.append('  '.join(f'{r[c]:>15.4f}' if isinstance(r[c], float) else f'{r[c]:>15}'
                           for c in columns))
  out = {'seeds': summary['seeds'], 'table': '\n' + '\n'.join(lines)}
  for key in ('search_val_acc', 'test_acc', 'random_test_acc', 'params', 'random_params'):
    if f'{key}_mean' in summary:
      digits = 0 if 'params' in key else 4
      out[key] = f'{summary[key + "_mean"]:.{digits}f} +- {summary[key + "_std"]:.{digits}f}'
  if 'searched_vs_random' in summary:
    test = summary['searched_vs_random']
    p = test['p_value']
    out['searched_minus_random'] = (
        f'{test["mean_difference"]:+.4f} (searched better in {test["searched_better"]} of '
        f'{test["n"]} seeds; {test["test"]}: p = {"n/a" if p is None else f"{p:.3g}"})')
    out['verdict'] = summary['verdict']
  for cell, stats in summary['agreement'].items():
    out[f'agreement_{cell}'] = (
        f'{stats["edges_and_ops_in_every_seed"]} of {stats["edges_per_cell"]:.0f} edges with '
        f'their op in every seed; mean pairwise overlap {stats["mean_pairwise_op_agreement"]:.2f}')
  return out

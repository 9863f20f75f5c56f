"""Plots of the architecture weights: the heat map of a search's alphas and their evolution.

An alphas file (`alphas.npz`, `alphas/epoch_NNN.npz`) describes itself: one
[num_edges, num_ops] array per cell type (the space's cell types), `primitives` (the op
per column) and `edges` ((destination state, source state) per row). Other arrays (e.g.
PC-DARTS's 1-d edge normalisation betas) are ignored. Files written before `edges` was
stored get their edges inferred from the row count.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, NamedTuple, Sequence
import zlib

from absl import logging
from matplotlib import patches
import numpy as np

from darts_jax import spaces
from darts_jax.errors import UserError
from darts_jax.viz.figures import new_figure, op_color, save_figure
from darts_jax.viz.run_files import epoch_of

Edges = Sequence[tuple[int, int]]
Kept = Mapping[str, Sequence[tuple[int, int]]]

_META_KEYS = ('primitives', 'edges')
# Old files with one cell (`normal`) of 6 rows: NAS-Bench-201's 1←0, 2←0, 2←1, 3←0, ...
_LEGACY_ONE_CELL_EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


class Alphas(NamedTuple):
  """An alphas file: `cells` {cell type: [num_edges, num_ops] logits} in file order,
  `primitives` (op per column), `edges` ((dst, src) per row; None if unknown)."""
  cells: dict[str, np.ndarray]
  primitives: list[str]
  edges: list[tuple[int, int]] | None


def softmax(logits: Any) -> np.ndarray:
  """Row-wise softmax of `[num_edges, num_ops]` logits (numpy or jax)."""
  a = np.asarray(logits, dtype=np.float64)
  z = a - a.max(axis=-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(axis=-1, keepdims=True)


def layered_edges(num_edges: int) -> list[tuple[int, int]] | None:
  """(dst, src) per row of a cell with two inputs whose node i (state i + 2) takes every
  earlier state (the DARTS cell: 14 rows -> 4 nodes); None for another row count."""
  edges, node = [], 0
  while len(edges) < num_edges:
    edges += [(node + 2, src) for src in range(node + 2)]
    node += 1
  return edges if len(edges) == num_edges else None


def infer_edges(cells: Mapping[str, Any]) -> list[tuple[int, int]] | None:
  """The edges of an old alphas file without an `edges` array, from its cells' rows."""
  if not cells:
    return None
  rows = np.shape(next(iter(cells.values())))[0]
  if len(cells) == 1 and rows == len(_LEGACY_ONE_CELL_EDGES):
    return list(_LEGACY_ONE_CELL_EDGES)
  return layered_edges(rows)


def edge_labels(edges: Edges | None, num_rows: int | None = None) -> list[str]:
  """'dst←src' per alpha row ('2←0', '2←1', '3←0', ...); 'e<row>' without edges."""
  if edges is None:
    return [f'e{r}' for r in range(num_rows or 0)]
  return [f'{dst}←{src}' for dst, src in edges]


def alpha_cells(arrays: Mapping[str, Any], primitives: Sequence[str] | None = None
                ) -> dict[str, np.ndarray]:
  """The [num_edges, num_ops] arrays of `arrays` (one per cell type), as float64;
  1-d and other-shaped arrays (betas, temperatures) and the metadata are left out."""
  cells: dict[str, np.ndarray] = {}
  for key, value in arrays.items():
    if key in _META_KEYS:
      continue
    a = np.asarray(value)
    if a.ndim != 2 or not np.issubdtype(a.dtype, np.number):
      continue
    if primitives is not None and a.shape[1] != len(primitives):
      continue
    if cells and a.shape != next(iter(cells.values())).shape:
      continue
    cells[key] = a.astype(np.float64)
  return cells


def _default_primitives(num_ops: int) -> list[str]:
  """Old files without `primitives`: a registered space's default ops of that count."""
  for name in spaces.names():
    default = getattr(spaces.get(name), 'primitives', None)
    if isinstance(default, (tuple, list)) and len(default) == num_ops:
      return [str(p) for p in default]
  return [f'op{i}' for i in range(num_ops)]


def load_alphas(path: str) -> Alphas:
  """Reads an alphas .npz: `(cells, primitives, edges)` (see `Alphas`).

  Missing `primitives` default to a registered space's default ops when the column
  count matches, else to `op0, op1, ...`; missing `edges` are inferred (`infer_edges`).
  Raises UserError on a bad file.
  """
  try:
    with np.load(path, allow_pickle=False) as data:
      arrays = {k: data[k] for k in data.files}
  except (OSError, KeyError, ValueError, zlib.error, EOFError) as e:
    raise UserError(f'cannot read alphas file {path} ({e}); expected an .npz with one '
                    '[num_edges, num_ops] array per cell type, primitives and edges') from e
  prims = [str(p) for p in np.ravel(arrays['primitives'])] if 'primitives' in arrays else None
  cells = alpha_cells(arrays, prims)
  if not cells and prims is not None:
    cells = alpha_cells(arrays)  # `primitives` does not fit: ignore it.
  if not cells:
    raise UserError(f'alphas file {path} has no 2-d [num_edges, num_ops] array (found '
                    f'{", ".join(f"{k} {np.shape(v)}" for k, v in arrays.items()) or "none"})')
  rows, cols = next(iter(cells.values())).shape
  if prims is None or len(prims) != cols:
    prims = _default_primitives(cols)
  edges = None
  if 'edges' in arrays:
    e = np.asarray(arrays['edges'])
    if e.ndim == 2 and e.shape == (rows, 2) and np.issubdtype(e.dtype, np.integer):
      edges = [(int(d), int(s)) for d, s in e]
    else:
      logging.warning('alphas file %s: edges of shape %s do not fit %d rows; inferring',
                      path, e.shape, rows)
  if edges is None:
    edges = infer_edges(cells)
  return Alphas(cells, prims, edges)


def kept_from_graphs(graphs: Sequence[Any], primitives: Sequence[str]
                     ) -> dict[str, list[tuple[int, int]]]:
  """{cell type: [(row, column)]} of the alphas an architecture's cell graphs kept."""
  prims = list(primitives)
  kept: dict[str, list[tuple[int, int]]] = {}
  for g in graphs:
    kept.setdefault(g.alpha_key, []).extend(
        (e.row, prims.index(e.op)) for e in g.op_edges if e.row is not None and e.op in prims)
  return kept


def cell_titles(graphs: Sequence[Any]) -> dict[str, str]:
  """{cell type: the cell graph's title}, for the heat map's panels."""
  return {g.alpha_key: g.title for g in graphs}


def plot_alpha_heatmap(cells: Mapping[str, Any], primitives: Sequence[str],
                       edges: Edges | None, path: str | os.PathLike[str],
                       kept: Kept | None = None, title: str | None = None,
                       titles: Mapping[str, str] | None = None) -> str:
  """Heat map of the softmaxed alphas (edges x ops), one panel per cell.

  Args:
    cells: {cell type: [num_edges, num_ops] logits}.
    primitives: op name per column.
    edges: (dst, src) per row (labels 'dst←src'); None: 'e<row>'.
    path: output picture (.png or .svg, by extension).
    kept: {cell type: [(row, column)]} outlined in red (the derived architecture's).
    title: the figure's title.
    titles: {cell type: panel title}; default '<cell type> cell'.

  Returns:
    `path`.
  """
  path = os.fspath(path)
  prims = [str(p) for p in primitives]
  names = list(cells)
  logits = [np.asarray(cells[n], dtype=np.float64) for n in names]
  if not logits:
    raise UserError('no alphas to plot')
  for name, a in zip(names, logits):
    if a.ndim != 2 or a.shape[1] != len(prims):
      raise UserError(f'alphas {name} have shape {a.shape}, expected '
                      f'[num_edges, {len(prims)}] (one column per primitive)')
  weights = [softmax(a) for a in logits]
  finite = [float(np.nanmax(w)) for w in weights if np.isfinite(w).any()]
  vmax = max(finite) if finite else 1.0
  rows = max(a.shape[0] for a in logits)
  # Fixed layout in inches (faster than bbox_inches='tight', one draw pass).
  pw, ph = 0.55 * len(prims), 0.3 * rows
  left, gap, right, top, bottom = 1.05, 1.05, 1.0, 0.75, 1.25
  panels = len(logits)
  fw, fh = left + panels * pw + (panels - 1) * gap + right, bottom + ph + top
  fig = new_figure((fw, fh))
  axes = [fig.add_axes(((left + k * (pw + gap)) / fw, bottom / fh, pw / fw,
                        ph / fh)) for k in range(panels)]
  cax = fig.add_axes(((left + panels * pw + (panels - 1) * gap + 0.15) / fw,
                      bottom / fh, 0.15 / fw, ph / fh))
  image = None
  outlined = False
  for ax, name, w in zip(axes, names, weights):
    image = ax.imshow(w, cmap='Blues', vmin=0.0, vmax=vmax, aspect='auto')
    ax.set_title((titles or {}).get(name, f'{name} cell'))
    ax.set_xticks(range(len(prims)))
    ax.set_xticklabels(prims, rotation=45, ha='right', fontsize=9)
    ax.set_yticks(range(w.shape[0]))
    labels = edge_labels(edges, w.shape[0])
    ax.set_yticklabels(labels if len(labels) == w.shape[0] else edge_labels(None, w.shape[0]),
                       fontsize=9)
    ax.set_ylabel('edge (node ← input state)')
    for r in range(w.shape[0]):
      for c in range(w.shape[1]):
        v = w[r, c]
        ax.text(c, r, f'{v:.2f}', ha='center', va='center', fontsize=7,
                color='white' if v > 0.6 * vmax else 'black')
    for r, c in (kept or {}).get(name, ()):
      if 0 <= r < w.shape[0] and 0 <= c < w.shape[1]:
        outlined = True
        ax.add_patch(patches.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False,
                                       edgecolor='#d62728', linewidth=2))
  if image is not None:
    cbar = fig.colorbar(image, cax=cax)
    cbar.set_label('softmax weight')
  red = '; red = kept in the derived cell' if outlined else ''
  default_title = (f'architecture weights (softmax over ops{red})' if panels > 1
                   else f'softmax over ops{red}')
  fig.suptitle(title or default_title, fontsize=11 if panels > 1 else 10, y=1 - 0.12 / fh)
  save_figure(fig, path, dpi=100, tight=False)
  return path


def _evolution_grid(edges: Edges | None, num_rows: int
                    ) -> tuple[list[tuple[int, int]], int, int]:
  """(grid row, grid column) per alpha row, and the grid's size: row = the rank of the
  destination state, column = the rank of the source state."""
  if edges is None:
    return [(r, 0) for r in range(num_rows)], num_rows, 1
  dsts = sorted({d for d, _ in edges})
  srcs = sorted({s for _, s in edges})
  grid = [(dsts.index(d), srcs.index(s)) for d, s in edges]
  return grid, len(dsts), len(srcs)


def plot_alpha_evolution(alpha_files: Sequence[str | os.PathLike[str]],
                         path: str | os.PathLike[str]) -> str:
  """Each edge's op weights over epochs, one small plot per edge.

  One block of rows per cell type; in a block, a row per destination state and a column
  per source state (from the files' `edges`). Unreadable files, and files whose cells,
  ops or edges differ from the first readable one, are skipped with a warning.

  Args:
    alpha_files: `.npz` files (see `load_alphas`) in epoch order.
    path: output picture (.png or .svg).

  Returns:
    `path`.
  """
  path = os.fspath(path)
  epochs: list[int] = []
  series: dict[str, list[np.ndarray]] = {}
  first: Alphas | None = None
  for k, f in enumerate(alpha_files):
    f = os.fspath(f)
    try:
      alphas = load_alphas(f)
    except UserError as e:
      logging.warning('skipping %s', e)
      continue
    if first is not None and (
        list(alphas.cells) != list(first.cells) or alphas.primitives != first.primitives
        or alphas.edges != first.edges
        or any(a.shape != first.cells[n].shape for n, a in alphas.cells.items())):
      logging.warning('skipping %s: cells %s / ops / edges differ from the first file',
                      f, {n: a.shape for n, a in alphas.cells.items()})
      continue
    first = first or alphas
    e = epoch_of(f)
    epochs.append(e if e is not None else k + 1)
    for name, a in alphas.cells.items():
      series.setdefault(name, []).append(softmax(a))
  if first is None:
    raise UserError('no readable alphas files to plot; expected '
                    'alphas/epoch_001.npz ... written by the search')
  prims = first.primitives
  cells = [(name, np.stack(ws)) for name, ws in series.items()]  # [epochs, edges, ops]
  num_edges = cells[0][1].shape[1]
  grid, nrows, ncols = _evolution_grid(first.edges, num_edges)
  labels = edge_labels(first.edges, num_edges)
  ymax = min(1.0, 1.05 * max(float(np.nanmax(w)) if np.isfinite(w).any() else 1.0
                             for _, w in cells))
  x = np.asarray(epochs)
  xlim = (x.min() - 0.5, x.max() + 0.5) if len(x) < 2 else (x.min(), x.max())
  # Fixed layout (no tight_layout / shared axes): this figure has ~30 axes
  # and those cost seconds.
  blocks = len(cells)
  fig_height = 1.5 * blocks * nrows + 1.3
  fig = new_figure((2.3 * ncols, fig_height))
  gs = fig.add_gridspec(blocks * nrows, ncols, left=0.06, right=0.985,
                        bottom=0.04, top=1 - 1.3 / fig_height, wspace=0.18, hspace=0.55)
  lowest = {}  # Column -> lowest grid row in use (gets the x label).
  for block in range(blocks):
    for row, col in grid:
      lowest[col] = max(lowest.get(col, -1), block * nrows + row)
  xticks = np.unique(np.linspace(x.min(), x.max(), min(len(x), 4)).round())
  yticks = [t for t in (0.0, 0.25, 0.5, 0.75, 1.0) if t <= ymax]
  marker = 'o' if len(x) < 16 else None
  handles = []
  for block, (name, w) in enumerate(cells):
    for edge, (row, col) in enumerate(grid):
      # Only used slots get axes, each with few fixed ticks: this figure has
      # ~30 axes and matplotlib's tick machinery dominates its cost.
      ax = fig.add_subplot(gs[block * nrows + row, col])
      for o, op in enumerate(prims):
        (line,) = ax.plot(x, w[:, edge, o], color=op_color(op), linewidth=1.3,
                          marker=marker, markersize=2.5, label=op)
        if block == 0 and edge == 0:
          handles.append(line)
      ax.set_title(f'{name} {labels[edge]}', fontsize=9, pad=2)
      ax.set_xlim(*xlim)
      ax.set_ylim(0.0, ymax)
      ax.set_xticks(xticks)
      ax.set_yticks(yticks)
      ax.tick_params(labelsize=7, labelleft=col == 0)
      ax.grid(alpha=0.3)
      if lowest[col] == block * nrows + row:
        ax.set_xlabel('epoch', fontsize=8)
  fig.legend(handles, prims, loc='upper center', ncol=min(len(prims), 4),
             frameon=False, fontsize=9, bbox_to_anchor=(0.5, 0.975))
  fig.suptitle('softmax weight per op over epochs (title: cell node ← input)',
               fontsize=11, y=0.995)
  save_figure(fig, path, dpi=90, tight=False)
  return path

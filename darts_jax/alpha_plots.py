"""Plots of the architecture weights: the heat map of a search's alphas and their evolution."""

from __future__ import annotations

import os
from typing import Any, Sequence
import zlib

from absl import logging
from matplotlib import patches
import numpy as np

from darts_jax import genotypes as genotypes_lib
from darts_jax.errors import UserError
from darts_jax.figures import CELLS, new_figure, op_color, save_figure
from darts_jax.run_files import epoch_of


def softmax(logits: Any) -> np.ndarray:
  """Row-wise softmax of `[num_edges, num_ops]` logits (numpy or jax)."""
  a = np.asarray(logits, dtype=np.float64)
  z = a - a.max(axis=-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(axis=-1, keepdims=True)


def steps_for_edges(num_edges: int) -> int | None:
  """Number of intermediate nodes whose cell has `num_edges` (14 -> 4)."""
  steps = 0
  while genotypes_lib.num_edges(steps) < num_edges:
    steps += 1
  return steps if genotypes_lib.num_edges(steps) == num_edges else None


def nb201_edges() -> list[tuple[int, int]]:
  """NAS-Bench-201's (node, input) per alpha row: 1←0, 2←0, 2←1, 3←0, 3←1, 3←2."""
  from darts_jax import nb201  # pylint: disable=g-import-not-at-top
  return nb201.edge_list()


def edge_labels(num_edges: int, nb201: bool = False) -> list[str]:
  """`dst←src` state labels per alpha row: '2←0', '2←1', '3←0', ... (NAS-Bench-201: '1←0', ...)."""
  if nb201 and num_edges == len(nb201_edges()):
    return [f'{i}←{j}' for i, j in nb201_edges()]
  steps = steps_for_edges(num_edges)
  if steps is None:
    return [f'e{r}' for r in range(num_edges)]
  return [f'{i + 2}←{j}' for i, j in genotypes_lib.edge_list(steps)]



def _selected_cells(weights_logits: np.ndarray, primitives: Sequence[str],
                    nb201: bool = False) -> list[tuple[int, int]]:
  """(row, col) of the alphas the derivation keeps, for one cell (DARTS: 2 strongest
  non-'none' edges per node, best op; NAS-Bench-201: the best op of every edge)."""
  if nb201:
    return [(r, int(c)) for r, c in enumerate(np.argmax(weights_logits, axis=-1))]
  steps = steps_for_edges(weights_logits.shape[0])
  if steps is None or all(p == 'none' for p in primitives):
    return []
  g = genotypes_lib.derive_genotype(weights_logits, weights_logits,
                                    primitives, steps=steps, multiplier=steps)
  cells = []
  for k, (op, src) in enumerate(g.normal):
    node = k // 2
    row = genotypes_lib.num_edges(node) + src
    cells.append((row, list(primitives).index(op)))
  return cells


def plot_alpha_heatmap(alphas_normal: Any, alphas_reduce: Any,
                       primitives: Sequence[str],
                       path: str | os.PathLike[str],
                       title: str | None = None) -> str:
  """Heat map of the softmaxed alphas (edges x ops) of both cells.

  Cells the derivation keeps (DARTS: 2 strongest non-'none' edges per node,
  best op) are outlined in red. `alphas_reduce=None` is a NAS-Bench-201 search
  (one cell, the best op of every edge kept). The format follows the extension
  (.png or .svg).

  Returns:
    `path`.
  """
  path = os.fspath(path)
  prims = [str(p) for p in primitives]
  nb201 = alphas_reduce is None
  names = ('NAS-Bench-201',) if nb201 else CELLS
  logits = [np.asarray(a, dtype=np.float64) for a in
            ((alphas_normal,) if nb201 else (alphas_normal, alphas_reduce))]
  for name, a in zip(names, logits):
    if a.ndim != 2 or a.shape[1] != len(prims):
      raise UserError(f'alphas_{name} has shape {a.shape}, expected '
                      f'[num_edges, {len(prims)}] (one column per primitive)')
  weights = [softmax(a) for a in logits]
  vmax = max(float(w.max()) for w in weights)
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
  for ax, name, a, w in zip(axes, names, logits, weights):
    image = ax.imshow(w, cmap='Blues', vmin=0.0, vmax=vmax, aspect='auto')
    ax.set_title(f'{name} cell')
    ax.set_xticks(range(len(prims)))
    ax.set_xticklabels(prims, rotation=45, ha='right', fontsize=9)
    ax.set_yticks(range(w.shape[0]))
    ax.set_yticklabels(edge_labels(w.shape[0], nb201), fontsize=9)
    ax.set_ylabel('edge (node ← input state)')
    for r in range(w.shape[0]):
      for c in range(w.shape[1]):
        v = w[r, c]
        ax.text(c, r, f'{v:.2f}', ha='center', va='center', fontsize=7,
                color='white' if v > 0.6 * vmax else 'black')
    try:
      selected = _selected_cells(a, prims, nb201)
    except Exception:  # pylint: disable=broad-except
      selected = []  # e.g. NaN alphas: no outline, still a picture.
    for r, c in selected:
      ax.add_patch(patches.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False,
                                     edgecolor='#d62728', linewidth=2))
  if image is not None:
    cbar = fig.colorbar(image, cax=cax)
    cbar.set_label('softmax weight')
  default_title = ('architecture weights (softmax over ops; red = kept in the derived '
                   'cell)' if panels > 1 else 'softmax over ops; red = derived cell')
  fig.suptitle(title or default_title, fontsize=11 if panels > 1 else 10, y=1 - 0.12 / fh)
  save_figure(fig, path, dpi=100, tight=False)
  return path


def load_alphas(path: str) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
  """Reads an alphas .npz: `(normal, reduce, primitives)`.

  `reduce` is None for a NAS-Bench-201 search (one cell, no `reduce` array).
  Missing `primitives` default to `genotypes.PRIMITIVES` when the column count
  matches, else to `op0, op1, ...`. Raises UserError on a bad file.
  """
  try:
    with np.load(path, allow_pickle=False) as data:
      normal = np.asarray(data['normal'], dtype=np.float64)
      reduce = (np.asarray(data['reduce'], dtype=np.float64)
                if 'reduce' in data.files else None)
      prims = ([str(p) for p in data['primitives']]
               if 'primitives' in data.files else None)
  except (OSError, KeyError, ValueError, zlib.error) as e:
    raise UserError(f'cannot read alphas file {path} ({e}); expected an .npz '
                    'with arrays normal, reduce (DARTS space) and primitives') from e
  if normal.ndim != 2 or (reduce is not None and normal.shape != reduce.shape):
    raise UserError(f'alphas file {path}: normal {normal.shape} and reduce '
                    f'{None if reduce is None else reduce.shape} must be equal 2-d '
                    '[num_edges, num_ops]')
  if prims is None or len(prims) != normal.shape[1]:
    if normal.shape[1] == len(genotypes_lib.PRIMITIVES):
      prims = list(genotypes_lib.PRIMITIVES)
    else:
      prims = [f'op{i}' for i in range(normal.shape[1])]
  return normal, reduce, prims


def plot_alpha_evolution(alpha_files: Sequence[str | os.PathLike[str]],
                         path: str | os.PathLike[str]) -> str:
  """Each edge's op weights over epochs, one small plot per edge.

  Rows are the intermediate nodes of the normal cell, then of the reduction
  cell; columns are the input states. Unreadable files are skipped with a
  warning.

  Args:
    alpha_files: `.npz` files (see `load_alphas`) in epoch order.
    path: output picture (.png or .svg).

  Returns:
    `path`.
  """
  path = os.fspath(path)
  epochs, normals, reduces, prims = [], [], [], None
  for k, f in enumerate(alpha_files):
    f = os.fspath(f)
    try:
      n, r, p = load_alphas(f)
    except UserError as e:
      logging.warning('skipping %s', e)
      continue
    if normals and (n.shape != normals[0].shape or p != prims
                    or (r is None) != (reduces[0] is None)):
      logging.warning('skipping %s: shape %s / ops differ from the first file',
                      f, n.shape)
      continue
    prims = p
    e = epoch_of(f)
    epochs.append(e if e is not None else k + 1)
    normals.append(softmax(n))
    reduces.append(None if r is None else softmax(r))
  if not normals:
    raise UserError('no readable alphas files to plot; expected '
                    'alphas/epoch_001.npz ... written by the search')
  assert prims is not None
  normal = np.stack(normals)  # [epochs, edges, ops]
  nb201 = reduces[0] is None
  cells = [('cell', normal)] if nb201 else [('normal', normal),
                                            ('reduce', np.stack(reduces))]
  num_edges = normal.shape[1]
  steps = steps_for_edges(num_edges)
  if nb201 and num_edges == len(nb201_edges()):
    grid = [(i - 1, j) for i, j in nb201_edges()]
    nrows, ncols = 3, 3
    labels = edge_labels(num_edges, nb201=True)
  elif steps is None:
    grid = [(r, 0) for r in range(num_edges)]
    nrows, ncols = num_edges, 1
    labels = edge_labels(num_edges)
  else:
    grid = [(i, j) for i, j in genotypes_lib.edge_list(steps)]
    nrows, ncols = steps, steps + 1
    labels = edge_labels(num_edges)
  ymax = min(1.0, 1.05 * max(float(w.max()) for _, w in cells))
  x = np.asarray(epochs)
  xlim = (x.min() - 0.5, x.max() + 0.5) if len(x) < 2 else (x.min(), x.max())
  # Fixed layout (no tight_layout / shared axes): this figure has ~30 axes
  # and those cost seconds.
  blocks = len(cells)
  fig = new_figure((2.3 * ncols, 1.5 * blocks * nrows + 1.3))  # fig_height below
  fig_height = 1.5 * blocks * nrows + 1.3
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

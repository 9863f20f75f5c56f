"""Pictures of a DARTS search: cells, alpha heat maps, alpha evolution.

Cells are written as graphviz DOT text and rendered with the `dot` binary when
it is installed; otherwise a matplotlib drawing of the same graph is used so
pictures always exist. Plots use matplotlib `Figure` objects with the Agg
canvas directly (never pyplot), so the global backend is left alone.

CLI:
  python -m darts_jax.visualize --genotype=DARTS_V2 --out=/tmp/cells
  python -m darts_jax.visualize --workdir=/path/to/search_run   # -> plots/
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import tempfile
import zlib
from typing import Any, Callable, Sequence

from absl import logging
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib import patches
from matplotlib import path as mpath
import numpy as np

from darts_jax import genotypes as genotypes_lib
from darts_jax.errors import UserError

Genotype = genotypes_lib.Genotype

PLOTS_SUBDIR = 'plots'
CELLS = ('normal', 'reduce')
FORMATS = ('png', 'svg')

INSTALL_GRAPHVIZ = ('apt-get install graphviz (Debian/Ubuntu), '
                    'brew install graphviz (macOS) or '
                    'conda install graphviz')

# Fill colours of the reference DARTS cell plots.
_INPUT_COLOR = '#b4eeb4'  # darkseagreen2
_NODE_COLOR = '#add8e6'  # lightblue
_OUTPUT_COLOR = '#eee8aa'  # palegoldenrod

# One colour per op, shared by cell drawings, heat maps and evolution plots.
_OP_COLORS = {
    'none': '#9e9e9e',
    'max_pool_3x3': '#2e7d32',
    'avg_pool_3x3': '#8bc34a',
    'skip_connect': '#424242',
    'sep_conv_3x3': '#1565c0',
    'sep_conv_5x5': '#4fc3f7',
    'dil_conv_3x3': '#c62828',
    'dil_conv_5x5': '#ef6c00',
}
_EXTRA_COLORS = ('#6a1b9a', '#00897b', '#ad1457', '#5d4037', '#f9a825',
                 '#3949ab', '#7cb342', '#d84315')

_warned_no_dot = False


def op_color(op: str) -> str:
  """A fixed colour per op name (stable across plots and runs)."""
  if op in _OP_COLORS:
    return _OP_COLORS[op]
  return _EXTRA_COLORS[zlib.crc32(op.encode()) % len(_EXTRA_COLORS)]


def new_figure(figsize: tuple[float, float]) -> Figure:
  """A matplotlib Figure on an Agg canvas (no pyplot, no global state)."""
  fig = Figure(figsize=figsize)
  FigureCanvasAgg(fig)
  return fig


def save_figure(fig: Figure, path: str, dpi: int = 100,
                 tight: bool = True) -> None:
  """Saves by extension (png/svg/pdf) via a temp file + rename (atomic)."""
  ext = os.path.splitext(path)[1].lower().lstrip('.') or 'png'
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix='.tmp_', suffix='.' + ext, dir=directory)
  os.close(fd)
  try:
    fig.savefig(tmp, format=ext, dpi=dpi,
                bbox_inches='tight' if tight else None,
                metadata=_metadata(ext))
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def _metadata(ext: str) -> dict[str, Any] | None:
  if ext == 'svg':
    return {'Date': None}  # Reproducible output.
  if ext == 'png':
    return {'Software': None}
  return None


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


def _as_genotype(genotype: Any) -> Genotype:
  if isinstance(genotype, Genotype):
    return genotype
  if isinstance(genotype, dict):
    return genotypes_lib.genotype_from_json(genotype)
  return genotypes_lib.load_genotype(genotype)


def _cell_pairs(g: Genotype, cell: str) -> tuple[list[tuple[str, int]],
                                                  list[int]]:
  if cell not in CELLS:
    raise ValueError(f"cell must be 'normal' or 'reduce', got {cell!r}")
  pairs = list(g.normal if cell == 'normal' else g.reduce)
  concat = list(g.normal_concat if cell == 'normal' else g.reduce_concat)
  return pairs, concat


def _state_name(state: int) -> str:
  if state == 0:
    return 'c_{k-2}'
  if state == 1:
    return 'c_{k-1}'
  return str(state - 2)


_OUTPUT_NAME = 'c_{k}'


def _dot_quote(s: str) -> str:
  return '"' + s.replace('\\', '\\\\').replace('"', '\\"') + '"'


# ----------------------------------------------------------------------------
# Cells.


def _dot_header(name: str, title: str) -> list[str]:
  """The opening lines of a cell's DOT graph: left to right, rounded filled boxes."""
  return [
      f'digraph {name} {{',
      f'  graph [rankdir=LR, label={_dot_quote(title)}, labelloc=t, '
      'fontname="Helvetica", fontsize=22, bgcolor=white, '
      'nodesep=0.35, ranksep=0.6];',
      '  node [shape=box, style="rounded,filled", fontname="Helvetica", '
      'fontsize=20, height=0.5, width=0.5, penwidth=2];',
      '  edge [fontname="Helvetica", fontsize=16, penwidth=1.6, '
      'arrowsize=0.9];',
  ]


def cell_to_dot(genotype: Genotype, cell: str = 'normal',
                title: str | None = None) -> str:
  """Graphviz DOT text of one cell, laid out left to right.

  Inputs `c_{k-2}`, `c_{k-1}` (green), intermediate nodes `0..steps-1`
  (blue), output `c_{k}` (yellow) fed by the concatenated nodes; every edge
  is labelled (and coloured) by its op.

  Args:
    genotype: the genotype.
    cell: 'normal' or 'reduce'.
    title: graph label; defaults to '<cell> cell'.
  """
  g = _as_genotype(genotype)
  pairs, concat = _cell_pairs(g, cell)
  steps = len(pairs) // 2
  q = _dot_quote
  lines = _dot_header(cell, title or cell + ' cell') + [
      f'  {q(_state_name(0))} [fillcolor={q(_INPUT_COLOR)}];',
      f'  {q(_state_name(1))} [fillcolor={q(_INPUT_COLOR)}];',
      f'  {{ rank=same; {q(_state_name(0))}; {q(_state_name(1))}; }}',
  ]
  for i in range(steps):
    lines.append(f'  {q(_state_name(i + 2))} [fillcolor={q(_NODE_COLOR)}];')
  lines.append(f'  {q(_OUTPUT_NAME)} [fillcolor={q(_OUTPUT_COLOR)}];')
  for k, (op, src) in enumerate(pairs):
    dst = k // 2 + 2
    color = q(op_color(op))
    lines.append(f'  {q(_state_name(src))} -> {q(_state_name(dst))} '
                 f'[label={q(op)}, color={color}, fontcolor={color}];')
  for state in concat:
    lines.append(f'  {q(_state_name(state))} -> {q(_OUTPUT_NAME)} '
                 '[color="#777777"];')
  lines.append('}')
  return '\n'.join(lines) + '\n'


def _warn_no_dot() -> None:
  global _warned_no_dot
  if not _warned_no_dot:
    _warned_no_dot = True
    logging.warning(
        'graphviz `dot` not found: writing .dot files and simpler matplotlib '
        'cell drawings instead; for graphviz pictures install it with %s',
        INSTALL_GRAPHVIZ)


def _render_dot(dot_bin: str, dot_path: str, base: str,
                formats: Sequence[str]) -> bool:
  cmd = [dot_bin]
  for fmt in formats:
    cmd += [f'-T{fmt}', '-o', f'{base}.{fmt}']
  cmd.append(dot_path)
  try:
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    return True
  except subprocess.CalledProcessError as e:
    err = e.stderr.decode(errors='replace').strip().splitlines()
    logging.warning('graphviz dot failed on %s (%s); using matplotlib',
                    dot_path, err[-1] if err else f'exit {e.returncode}')
  except (OSError, subprocess.SubprocessError) as e:
    logging.warning('graphviz dot failed on %s (%s); using matplotlib',
                    dot_path, e)
  return False


def draw_genotype(genotype: Any, out_dir: str | os.PathLike[str],
                  prefix: str = '',
                  formats: Sequence[str] = FORMATS) -> list[str]:
  """Writes `{prefix}normal.{dot,png,svg}` and `{prefix}reduce.*`.

  Uses graphviz `dot` if installed, else (after one warning saying how to
  install it) a matplotlib drawing of the same graph.

  Args:
    genotype: a Genotype, or anything `genotypes.load_genotype` accepts.
    out_dir: output directory (created).
    prefix: file name prefix, e.g. 'epoch_003_'.
    formats: picture formats besides .dot.

  Returns:
    The written paths.
  """
  g = _as_genotype(genotype)
  out_dir = os.fspath(out_dir)
  os.makedirs(out_dir, exist_ok=True)
  paths = []
  for cell in CELLS:
    base = os.path.join(out_dir, f'{prefix}{cell}')
    paths += _write_picture(base, cell_to_dot(g, cell), formats,
                            lambda base=base, cell=cell: _draw_cell_matplotlib(
                                g, cell, base, formats))
  return paths


def _write_picture(base: str, dot_text: str, formats: Sequence[str],
                   draw_matplotlib: Callable[[], None]) -> list[str]:
  """Writes `base.dot`, then `base.<format>` by graphviz if installed, else (after one
  warning saying how to install it) by `draw_matplotlib`; returns the paths."""
  with open(base + '.dot', 'w', encoding='utf-8') as f:
    f.write(dot_text)
  if not formats:
    return [base + '.dot']
  dot_bin = shutil.which('dot')
  if dot_bin is None:
    _warn_no_dot()
  if dot_bin is None or not _render_dot(dot_bin, base + '.dot', base, formats):
    draw_matplotlib()
  return [base + '.dot'] + [f'{base}.{fmt}' for fmt in formats]


def _nb201_graph(arch: Any) -> tuple[dict[int, tuple[str, str]], list[tuple[int, int, str]]]:
  """Nodes 0 (input) .. 3 (output) and the edges that carry something (not 'none')."""
  from darts_jax import nb201  # pylint: disable=g-import-not-at-top
  arch = arch if isinstance(arch, nb201.Arch) else nb201.load_arch(arch)
  last = len(arch.nodes)
  nodes = {i: (str(i), _INPUT_COLOR if i == 0 else _OUTPUT_COLOR if i == last else _NODE_COLOR)
           for i in range(last + 1)}
  edges = [(src, dst, op) for dst, node in enumerate(arch.nodes, start=1) for op, src in node
           if op != 'none']
  return nodes, edges


def nb201_cell_to_dot(arch: Any, title: str = 'NAS-Bench-201 cell') -> str:
  """Graphviz DOT text of a NAS-Bench-201 cell: input node 0 (green), output node 3
  (yellow); 'none' edges are left out."""
  nodes, edges = _nb201_graph(arch)
  q = _dot_quote
  lines = _dot_header('nb201', title)
  lines += [f'  {q(label)} [fillcolor={q(color)}];' for label, color in nodes.values()]
  lines += [f'  {q(str(src))} -> {q(str(dst))} [label={q(op)}, color={q(op_color(op))}, '
            f'fontcolor={q(op_color(op))}];' for src, dst, op in edges]
  return '\n'.join(lines + ['}']) + '\n'


def draw_nb201_arch(arch: Any, out_dir: str | os.PathLike[str], prefix: str = '',
                    formats: Sequence[str] = FORMATS) -> list[str]:
  """Writes `{prefix}cell.{dot,png,svg}` of a NAS-Bench-201 arch (an Arch, an arch
  string, or a file or workdir holding one); graphviz if installed, else matplotlib."""
  nodes, edges = _nb201_graph(arch)
  out_dir = os.fspath(out_dir)
  os.makedirs(out_dir, exist_ok=True)
  base = os.path.join(out_dir, f'{prefix}cell')
  # A zigzag: no edge passes through a node, so all can be straight.
  pos = {node: (2.6 * node, 0.0 if node in (0, len(nodes) - 1) else 1.3 * (-1) ** (node + 1))
         for node in nodes}
  return _write_picture(base, nb201_cell_to_dot(arch), formats, lambda: _draw_graph_matplotlib(
      'NAS-Bench-201 cell', pos, nodes, edges, base, formats))


def _cell_layout(pairs: list[tuple[str, int]], concat: list[int]
                 ) -> dict[Any, tuple[float, float]]:
  """Layered left-to-right positions: x = longest path from the inputs."""
  steps = len(pairs) // 2
  depth = {0: 0, 1: 0}
  for i in range(steps):
    srcs = [pairs[2 * i][1], pairs[2 * i + 1][1]]
    depth[i + 2] = 1 + max(depth[s] for s in srcs)
  out_depth = 1 + max([depth[s] for s in concat] + [0])
  layers: dict[int, list[Any]] = {}
  for state in sorted(depth):
    layers.setdefault(depth[state], []).append(state)
  layers.setdefault(out_depth, []).append('out')
  pos = {}
  for d, members in layers.items():
    m = len(members)
    for k, node in enumerate(members):
      pos[node] = (2.6 * d, 1.4 * ((m - 1) / 2 - k))
  return pos


def _draw_cell_matplotlib(g: Genotype, cell: str, base: str,
                          formats: Sequence[str]) -> None:
  """Fallback cell picture without graphviz (same nodes, edges and labels)."""
  pairs, concat = _cell_pairs(g, cell)
  nodes = {state: (_state_name(state), _INPUT_COLOR if state in (0, 1) else _NODE_COLOR)
           for state in range(len(pairs) // 2 + 2)}
  nodes['out'] = (_OUTPUT_NAME, _OUTPUT_COLOR)
  edges = [(src, k // 2 + 2, op) for k, (op, src) in enumerate(pairs)]
  edges += [(s, 'out', None) for s in concat]
  _draw_graph_matplotlib(f'{cell} cell', _cell_layout(pairs, concat), nodes, edges, base,
                         formats)


def _draw_graph_matplotlib(title: str, pos: dict[Any, tuple[float, float]],
                           nodes: dict[Any, tuple[str, str]],
                           edges: list[tuple[Any, Any, str | None]], base: str,
                           formats: Sequence[str]) -> None:
  """Boxes `nodes` (label, colour) at `pos`; arrows `edges` (src, dst, op or None)."""
  xs = [p[0] for p in pos.values()]
  ys = [p[1] for p in pos.values()]
  width = max(xs) - min(xs) + 2.4
  height = max(ys) - min(ys) + 2.0
  fig = new_figure((max(width * 1.1, 4.0), max(height * 1.1, 2.5)))
  ax = fig.add_axes((0, 0, 1, 0.92))
  ax.set_aspect('equal')
  ax.axis('off')
  ax.set_xlim(min(xs) - 1.1, max(xs) + 1.1)
  ax.set_ylim(min(ys) - 0.9, max(ys) + 0.9)
  fig.suptitle(title, fontsize=14)

  half_widths = {}
  for node, (x, y) in pos.items():
    label, color = nodes[node]
    w = 0.95 if len(label) > 2 else 0.55
    ax.add_patch(patches.FancyBboxPatch(
        (x - w / 2, y - 0.25), w, 0.5, boxstyle='round,pad=0.05',
        facecolor=color, edgecolor='black', linewidth=1.5, zorder=3))
    ax.text(x, y, label, ha='center', va='center', fontsize=11, zorder=4)
    half_widths[node] = w / 2

  seen: dict[tuple[Any, Any], int] = {}
  curve_ys = list(ys)
  for src, dst, op in edges:
    (x1, y1), (x2, y2) = pos[src], pos[dst]
    dup = seen.get((src, dst), 0)
    seen[(src, dst)] = dup + 1
    # Curve edges that would cross another node, and repeated edges.
    others = [p for n, p in pos.items() if n not in (src, dst)]
    rad = _pick_rad((x1, y1), (x2, y2), others, skip=dup)
    color = op_color(op) if op else '#777777'
    path = _edge_between_boxes((x1, y1), (x2, y2), rad, half_widths[src], half_widths[dst])
    ax.add_patch(patches.FancyArrowPatch(path=path, arrowstyle='-|>', mutation_scale=14,
                                         color=color, linewidth=1.5, zorder=2))
    curve_ys.extend(_bezier((x1, y1), (x2, y2), rad, np.linspace(0, 1, 21))[:, 1])
    if op:
      # 60% along the curve (past the middle, where edges from different
      # inputs cross); the Bezier matches arc3 as the axes have equal aspect.
      mx, my = _bezier((x1, y1), (x2, y2), rad, np.array([0.6]))[0]
      ax.text(mx, my, op, ha='center', va='center', fontsize=8, color=color,
              zorder=5,
              bbox=dict(boxstyle='round,pad=0.15', facecolor='white',
                        edgecolor='none', alpha=0.85))
  # Curved edges may bow out past the outer nodes: keep them inside the picture.
  ax.set_ylim(min(min(curve_ys) - 0.15, min(ys) - 0.9),
              max(max(curve_ys) + 0.15, max(ys) + 0.9))
  for fmt in formats:
    save_figure(fig, f'{base}.{fmt}', dpi=110)


def _edge_between_boxes(p1: tuple[float, float], p2: tuple[float, float], rad: float,
                        half_width1: float, half_width2: float) -> mpath.Path:
  """The `arc3,rad=rad` curve from p1 to p2, cut where it leaves and enters the node boxes.

  Geometric, where `patchA`/`patchB` clipping would bisect the curve against
  each box path at draw time (most of an epoch's drawing time).
  """
  t = np.linspace(0.0, 1.0, 401)
  points = _bezier(p1, p2, rad, t)
  margin = 0.05 + 0.03  # The boxes' rounding pad and a gap before the arrow head.

  def outside(center, half_width):
    return ((np.abs(points[:, 0] - center[0]) > half_width + margin)
            | (np.abs(points[:, 1] - center[1]) > 0.25 + margin))

  out1, out2 = outside(p1, half_width1), outside(p2, half_width2)
  a = t[np.argmax(out1)] if out1.any() else 0.0
  b = t[len(t) - 1 - np.argmax(out2[::-1])] if out2.any() else 1.0
  # The piece [a, b] of a quadratic Bezier has the control point blossom(a, b).
  control_ab = ((1 - a) * (1 - b) * np.array(p1)
                + (a * (1 - b) + b * (1 - a)) * _arc3_control(p1, p2, rad) + a * b * np.array(p2))
  start, end = _bezier(p1, p2, rad, np.array([a, b]))
  return mpath.Path([start, control_ab, end],
                    [mpath.Path.MOVETO, mpath.Path.CURVE3, mpath.Path.CURVE3])


def _arc3_control(p1: tuple[float, float], p2: tuple[float, float], rad: float) -> np.ndarray:
  """The control point of the quadratic Bezier matplotlib's `arc3,rad=rad` draws."""
  (x1, y1), (x2, y2) = p1, p2
  return np.array([(x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1)])


def _bezier(p1: tuple[float, float], p2: tuple[float, float], rad: float,
            t: np.ndarray) -> np.ndarray:
  """Points of the quadratic Bezier matplotlib's `arc3,rad=rad` draws."""
  c = _arc3_control(p1, p2, rad)
  t = t[:, None]
  return (1 - t)**2 * np.array(p1) + 2 * (1 - t) * t * c + t**2 * np.array(p2)


def _pick_rad(p1: tuple[float, float], p2: tuple[float, float],
              others: list[tuple[float, float]], skip: int = 0) -> float:
  """An `arc3` curvature whose edge keeps clear of the other node boxes.

  Tries a straight line, then bulges of growing size on either side; the
  first `skip` clear candidates are passed over (for repeated edges).
  """
  length = max(float(np.hypot(p2[0] - p1[0], p2[1] - p1[1])), 1e-6)
  t = np.linspace(0.08, 0.92, 25)
  best, best_clear = 0.0, -1.0
  for offset in (0.0, 0.6, -0.6, 1.2, -1.2, 1.8, -1.8, 2.4, -2.4):
    rad = 2 * offset / length  # The apex moves by rad * length / 2.
    pts = _bezier(p1, p2, rad, t)
    clear = min([float(np.min(np.maximum(np.abs(pts[:, 0] - ox) / 0.7,
                                          np.abs(pts[:, 1] - oy) / 0.42)))
                 for ox, oy in others] + [10.0])
    if clear >= 1.0:
      if skip == 0:
        return rad
      skip -= 1
      continue
    if clear > best_clear:
      best, best_clear = rad, clear
  return best


# ----------------------------------------------------------------------------
# Alphas.


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


_EPOCH_RE = re.compile(r'epoch_(\d+)')


def epoch_of(path: str) -> int | None:
  """Epoch number in a file name like `epoch_007.npz`, else None."""
  m = _EPOCH_RE.search(os.path.basename(path))
  return int(m.group(1)) if m else None


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


# ----------------------------------------------------------------------------
# Work directories.


@dataclasses.dataclass
class RunFiles:
  """What a search workdir holds (None / empty when absent)."""
  workdir: str
  search_dir: str
  genotype: Genotype | None = None
  genotype_source: str | None = None
  nb201_arch: str | None = None  # A NAS-Bench-201 search: its arch string (no genotype).
  final_alphas: str | None = None
  epoch_alphas: list[str] = dataclasses.field(default_factory=list)
  notes: list[str] = dataclasses.field(default_factory=list)


def find_search_dir(workdir: str) -> str:
  """`workdir/search` for a pipeline run, else `workdir` itself."""
  sub = os.path.join(workdir, 'search')
  has_own = any(os.path.exists(os.path.join(workdir, f)) for f in
                ('genotype.json', 'alphas.npz', 'alphas', 'metrics.jsonl'))
  return sub if os.path.isdir(sub) and not has_own else workdir


def read_jsonl(path: str, notes: list[str] | None = None
               ) -> list[dict[str, Any]]:
  """Reads JSON lines, skipping bad lines (noted in `notes`)."""
  rows, bad = [], 0
  with open(path, encoding='utf-8', errors='replace') as f:
    for line in f:
      line = line.strip()
      if not line:
        continue
      try:
        obj = json.loads(line)
      except json.JSONDecodeError:
        bad += 1
        continue
      if isinstance(obj, dict):
        rows.append(obj)
      else:
        bad += 1
  if bad and notes is not None:
    notes.append(f'{path}: skipped {bad} malformed line(s)')
  return rows


def genotype_from_record(value: Any) -> Genotype:
  """A genotype from a `genotypes.jsonl` record value (JSON dict or text)."""
  if isinstance(value, str):
    return genotypes_lib.parse_genotype(value)
  return genotypes_lib.genotype_from_json(value)


def find_run_files(workdir: str | os.PathLike[str]) -> RunFiles:
  """Locates genotype and alphas files of a search (or pipeline) workdir.

  Raises:
    UserError: if `workdir` is not a directory.
  """
  workdir = os.fspath(workdir)
  if not os.path.isdir(workdir):
    raise UserError(f'workdir {workdir} does not exist or is not a directory; '
                    'pass the --workdir of a search run')
  search_dir = find_search_dir(workdir)
  rf = RunFiles(workdir=workdir, search_dir=search_dir)
  arch_file = os.path.join(search_dir, 'arch.txt')  # nb201.ARCH_FILE
  if os.path.isfile(arch_file):
    with open(arch_file, encoding='utf-8', errors='replace') as f:
      rf.nb201_arch = f.read().strip()
    rf.genotype_source = arch_file
  for fname in (() if rf.nb201_arch else
                (genotypes_lib.GENOTYPE_JSON, genotypes_lib.GENOTYPE_TXT)):
    p = os.path.join(search_dir, fname)
    if os.path.isfile(p):
      try:
        rf.genotype = genotypes_lib.load_genotype(p)
        rf.genotype_source = p
        break
      except UserError as e:
        rf.notes.append(f'skipped {p}: {e}')
  history = os.path.join(search_dir, 'genotypes.jsonl')
  if rf.genotype is None and not rf.nb201_arch and os.path.isfile(history):
    rows = read_jsonl(history, rf.notes)
    for row in reversed(rows):
      try:
        rf.genotype = genotype_from_record(row.get('genotype'))
        rf.genotype_source = f'{history} (epoch {row.get("epoch")})'
        break
      except UserError:
        continue
  if rf.genotype is None and not rf.nb201_arch:
    rf.notes.append(f'no genotype.json in {search_dir}: cells not drawn')
  alpha_dir = os.path.join(search_dir, 'alphas')
  if os.path.isdir(alpha_dir):
    files = [os.path.join(alpha_dir, f) for f in os.listdir(alpha_dir)
             if f.endswith('.npz')]
    rf.epoch_alphas = sorted(
        files, key=lambda p: (epoch_of(p) is None, epoch_of(p) or 0, p))
  if not rf.epoch_alphas:
    rf.notes.append(f'no alphas/epoch_*.npz in {search_dir}: '
                    'alpha evolution not drawn')
  final = os.path.join(search_dir, 'alphas.npz')
  if os.path.isfile(final):
    rf.final_alphas = final
  elif rf.epoch_alphas:
    rf.final_alphas = rf.epoch_alphas[-1]
    rf.notes.append(f'no alphas.npz in {search_dir}: heat map uses '
                    f'{os.path.basename(rf.final_alphas)}')
  else:
    rf.notes.append(f'no alphas.npz in {search_dir}: heat map not drawn')
  return rf


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

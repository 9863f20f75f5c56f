"""Cell pictures: DARTS genotypes and NAS-Bench-201 cells as graphviz DOT and images.

Cells are written as graphviz DOT text and rendered with the `dot` binary when it is
installed; otherwise a matplotlib drawing of the same graph is used so pictures always
exist.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any, Callable, Sequence

from absl import logging
from matplotlib import patches
from matplotlib import path as mpath
import numpy as np

from darts_jax import genotypes as genotypes_lib
from darts_jax.figures import CELLS, new_figure, op_color, save_figure

Genotype = genotypes_lib.Genotype

FORMATS = ('png', 'svg')

INSTALL_GRAPHVIZ = ('apt-get install graphviz (Debian/Ubuntu), '
                    'brew install graphviz (macOS) or '
                    'conda install graphviz')

# Fill colours of the reference DARTS cell plots.
_INPUT_COLOR = '#b4eeb4'  # darkseagreen2
_NODE_COLOR = '#add8e6'  # lightblue
_OUTPUT_COLOR = '#eee8aa'  # palegoldenrod

_warned_no_dot = False


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

"""Cell pictures: any search space's cells (`spaces.CellGraph`) as graphviz DOT and images.

A space describes an architecture's cells as `CellGraph`s (`space.cell_graphs(arch)`);
this module writes each as graphviz DOT text and renders it with the `dot` binary when
it is installed; otherwise a matplotlib drawing of the same graph is used so pictures
always exist. Inputs are green, intermediate nodes blue, the output yellow; edges
carrying an op are labelled and coloured by it, plain connections are grey.
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

from darts_jax.spaces.base import CellGraph
from darts_jax.viz import run_files
from darts_jax.viz.figures import new_figure, op_color, save_figure

FORMATS = ('png', 'svg')

INSTALL_GRAPHVIZ = ('apt-get install graphviz (Debian/Ubuntu), '
                    'brew install graphviz (macOS) or '
                    'conda install graphviz')

# Fill colours of the reference DARTS cell plots.
_INPUT_COLOR = '#b4eeb4'  # darkseagreen2
_NODE_COLOR = '#add8e6'  # lightblue
_OUTPUT_COLOR = '#eee8aa'  # palegoldenrod
_PLAIN_EDGE_COLOR = '#777777'

_warned_no_dot = False


def _dot_quote(s: str) -> str:
  return '"' + s.replace('\\', '\\\\').replace('"', '\\"') + '"'


def _dot_id(name: str) -> str:
  """A graph name as a DOT ID: bare when it is one, else quoted."""
  ok = name and (name[0].isalpha() or name[0] == '_') and all(
      c.isalnum() or c == '_' for c in name)
  return name if ok else _dot_quote(name)


def _node_colors(graph: CellGraph) -> dict[int, str]:
  """State -> fill colour, in drawing order: inputs, intermediate nodes, the output."""
  colors = {s: _INPUT_COLOR for s in graph.inputs}
  colors.update({s: _NODE_COLOR for s in graph.nodes if s not in colors})
  colors.setdefault(graph.output, _OUTPUT_COLOR)
  return colors


def cell_to_dot(graph: CellGraph) -> str:
  """Graphviz DOT text of one cell, laid out left to right.

  Inputs (green, on one rank when there are several), intermediate nodes (blue), the
  output (yellow); op edges are labelled and coloured by their op, plain edges (e.g.
  the concatenation into a DARTS cell's output) are grey. The graph is named after
  `graph.name` and labelled `graph.title`; states are labelled `graph.label(state)`.
  """
  q = _dot_quote
  lines = [
      f'digraph {_dot_id(graph.name)} {{',
      f'  graph [rankdir=LR, label={q(graph.title)}, labelloc=t, '
      'fontname="Helvetica", fontsize=22, bgcolor=white, '
      'nodesep=0.35, ranksep=0.6];',
      '  node [shape=box, style="rounded,filled", fontname="Helvetica", '
      'fontsize=20, height=0.5, width=0.5, penwidth=2];',
      '  edge [fontname="Helvetica", fontsize=16, penwidth=1.6, '
      'arrowsize=0.9];',
  ]
  colors = _node_colors(graph)
  inputs = [s for s in colors if colors[s] == _INPUT_COLOR]
  for state in inputs:
    lines.append(f'  {q(graph.label(state))} [fillcolor={q(_INPUT_COLOR)}];')
  if len(inputs) > 1:
    lines.append('  { rank=same; ' + ' '.join(f'{q(graph.label(s))};' for s in inputs)
                 + ' }')
  for state, color in colors.items():
    if color != _INPUT_COLOR:
      lines.append(f'  {q(graph.label(state))} [fillcolor={q(color)}];')
  for e in graph.edges:
    arrow = f'  {q(graph.label(e.src))} -> {q(graph.label(e.dst))}'
    if e.op is None:
      lines.append(f'{arrow} [color={q(_PLAIN_EDGE_COLOR)}];')
    else:
      color = q(op_color(e.op))
      lines.append(f'{arrow} [label={q(e.op)}, color={color}, fontcolor={color}];')
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


def draw_cells(graphs: Sequence[CellGraph], out_dir: str | os.PathLike[str],
               prefix: str = '', formats: Sequence[str] = FORMATS) -> list[str]:
  """Writes `{prefix}{graph.name}.{dot,<formats>}` per cell graph into `out_dir`.

  Uses graphviz `dot` if installed, else (after one warning saying how to install it)
  a matplotlib drawing of the same graph.

  Returns:
    The written paths, graph by graph (.dot first).
  """
  out_dir = os.fspath(out_dir)
  os.makedirs(out_dir, exist_ok=True)
  paths = []
  for graph in graphs:
    base = os.path.join(out_dir, f'{prefix}{graph.name}')
    paths += _write_picture(base, cell_to_dot(graph), formats,
                            lambda base=base, graph=graph: _draw_cell_matplotlib(
                                graph, base, formats))
  return paths


def draw_arch(arch_or_spec: Any, out_dir: str | os.PathLike[str], prefix: str = '',
              formats: Sequence[str] = FORMATS, space: Any = None) -> list[str]:
  """Draws an architecture's cells (`draw_cells` of `space.cell_graphs(arch)`).

  Args:
    arch_or_spec: an architecture value, or a spec its space loads (text, a published
      name, a file or a search workdir), or its JSON value (a dict).
    out_dir: output directory (created).
    prefix: file name prefix, e.g. 'epoch_003_'.
    formats: picture formats besides .dot.
    space: the search space (class or configured instance); by default the space that
      claims the spec (`spaces.for_arch`).

  Returns:
    The written paths.
  """
  space, arch = run_files.resolve_arch(arch_or_spec, space)
  return draw_cells(space.cell_graphs(arch), out_dir, prefix=prefix, formats=formats)


def _layered_positions(graph: CellGraph) -> dict[int, tuple[float, float]]:
  """Left-to-right layers: x = the longest path from the inputs; the output last."""
  incoming: dict[int, list[int]] = {}
  for e in graph.edges:
    incoming.setdefault(e.dst, []).append(e.src)
  states = list(_node_colors(graph))
  depth: dict[int, int] = {}

  def depth_of(state: int, seen: frozenset = frozenset()) -> int:
    if state not in depth:
      srcs = [s for s in incoming.get(state, ()) if s not in seen and s != state]
      depth[state] = 0 if state in graph.inputs or not srcs else 1 + max(
          depth_of(s, seen | {state}) for s in srcs)
    return depth[state]

  for state in states:
    depth_of(state)
  others = [depth[s] for s in states if s != graph.output]
  depth[graph.output] = max([depth[graph.output]] + [d + 1 for d in others])
  layers: dict[int, list[int]] = {}
  for state in states:
    layers.setdefault(depth[state], []).append(state)
  pos = {}
  for d, members in layers.items():
    m = len(members)
    for k, state in enumerate(members):
      pos[state] = (2.6 * d, 1.4 * ((m - 1) / 2 - k))
  return pos


def _draw_cell_matplotlib(graph: CellGraph, base: str, formats: Sequence[str]) -> None:
  """Fallback cell picture without graphviz (same nodes, edges and labels); placed at
  `graph.positions` when the space gives them, else in layers."""
  colors = _node_colors(graph)
  nodes = {state: (graph.label(state), color) for state, color in colors.items()}
  pos = dict(graph.positions) if graph.positions else _layered_positions(graph)
  for state in nodes:  # States the space's positions leave out go in layers.
    if state not in pos:
      pos = _layered_positions(graph)
      break
  edges = [(e.src, e.dst, e.op) for e in graph.edges]
  _draw_graph_matplotlib(graph.title, {s: pos[s] for s in nodes}, nodes, edges, base,
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

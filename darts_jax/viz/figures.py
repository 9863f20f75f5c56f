"""Shared matplotlib helpers for darts_jax's pictures: figures, atomic saves, op colours.

Plots use matplotlib `Figure` objects with the Agg canvas directly (never pyplot), so the
global backend is left alone.
"""

from __future__ import annotations

import os
import tempfile
import zlib
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

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

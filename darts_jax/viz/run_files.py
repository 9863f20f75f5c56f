"""What a search (or pipeline) workdir holds: its architecture, alphas and JSON-lines records.

The architecture is read by the search space that claims the workdir (`spaces.for_arch`),
or, failing that, from the last readable record of its `genotypes.jsonl`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any

from darts_jax import spaces
from darts_jax.errors import UserError

_EPOCH_RE = re.compile(r'epoch_(\d+)')

HISTORY_FILE = 'genotypes.jsonl'


def epoch_of(path: str) -> int | None:
  """Epoch number in a file name like `epoch_007.npz`, else None."""
  m = _EPOCH_RE.search(os.path.basename(path))
  return int(m.group(1)) if m else None


@dataclasses.dataclass
class RunFiles:
  """What a search workdir holds (None / empty when absent)."""
  workdir: str
  search_dir: str
  space: Any = None  # The SearchSpace class of `arch`.
  arch: Any = None  # The final (or last recorded) architecture.
  arch_source: str | None = None  # Where `arch` came from.
  final_alphas: str | None = None
  epoch_alphas: list[str] = dataclasses.field(default_factory=list)
  notes: list[str] = dataclasses.field(default_factory=list)

  def cell_graphs(self) -> tuple:
    """The architecture's cell graphs; () without an architecture."""
    return tuple(self.space.cell_graphs(self.arch)) if self.arch is not None else ()


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


# ----------------------------------------------------------------------------
# Architectures of any registered space.


def _candidates(prefer: Any = None) -> list[Any]:
  found = [spaces.get(name) for name in spaces.names()]
  return ([prefer] + [s for s in found if s is not prefer]) if prefer is not None else found


def arch_from_text(text: str, prefer: Any = None) -> tuple[Any, Any]:
  """(space, architecture) of an architecture's text (`to_text`): `prefer` when it
  claims the text, else the space that does."""
  space = prefer if prefer is not None and prefer.claims(text) else spaces.for_arch(text)
  return space, space.parse(text)


def arch_from_json(value: Any, prefer: Any = None) -> tuple[Any, Any]:
  """(space, architecture) of a `to_json` value: the first space reading it (`prefer`
  first). Raises UserError when none does."""
  if isinstance(value, str):
    return arch_from_text(value, prefer)
  errors = []
  for space in _candidates(prefer):
    try:
      return space, space.from_json(value)
    except (UserError, ValueError, TypeError, KeyError, AttributeError) as e:
      errors.append(f'{space.name}: {e}')
  raise UserError('no search space reads this architecture (' + '; '.join(errors) + ')')


def arch_from_record(record: dict[str, Any], prefer: Any = None) -> tuple[Any, Any]:
  """(space, architecture) of a `genotypes.jsonl` record: its 'text', else its
  'genotype' (JSON or text). Raises UserError when neither reads."""
  text = record.get('text')
  if isinstance(text, str) and text.strip():
    try:
      return arch_from_text(text, prefer)
    except UserError:
      if 'genotype' not in record:
        raise
  if 'genotype' not in record:
    raise UserError("record has neither 'text' nor 'genotype'")
  return arch_from_json(record['genotype'], prefer)


def resolve_arch(arch_or_spec: Any, space: Any = None) -> tuple[Any, Any]:
  """(space, architecture) of an architecture value, a spec its space loads, or a JSON
  dict; `space` defaults to the space claiming the spec. Raises the space's UserError."""
  if isinstance(arch_or_spec, dict):
    return arch_from_json(arch_or_spec, space)
  space = space if space is not None else spaces.for_arch(arch_or_spec)
  return space, space.load(arch_or_spec)


# ----------------------------------------------------------------------------
# A workdir.


def _find_arch(rf: RunFiles) -> None:
  search_dir = rf.search_dir
  space = spaces.for_arch(search_dir)
  if space.claims(search_dir):
    try:
      rf.space, rf.arch = space, space.load(search_dir)
      rf.arch_source = search_dir
      return
    except UserError as e:
      rf.notes.append(f'skipped {search_dir}: {e}')
  history = os.path.join(search_dir, HISTORY_FILE)
  if os.path.isfile(history):
    for row in reversed(read_jsonl(history, rf.notes)):
      try:
        rf.space, rf.arch = arch_from_record(row)
      except UserError:
        continue
      rf.arch_source = f'{history} (epoch {row.get("epoch")})'
      return
  rf.notes.append(f'no genotype.json (or other architecture file) in {search_dir}: '
                  'cells not drawn')


def find_run_files(workdir: str | os.PathLike[str]) -> RunFiles:
  """Locates the architecture and alphas files of a search (or pipeline) workdir.

  Raises:
    UserError: if `workdir` is not a directory.
  """
  workdir = os.fspath(workdir)
  if not os.path.isdir(workdir):
    raise UserError(f'workdir {workdir} does not exist or is not a directory; '
                    'pass the --workdir of a search run')
  search_dir = find_search_dir(workdir)
  rf = RunFiles(workdir=workdir, search_dir=search_dir)
  _find_arch(rf)
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

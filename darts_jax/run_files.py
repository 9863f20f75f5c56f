"""What a search (or pipeline) workdir holds: its genotype, alphas and JSON-lines records."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any

from darts_jax import genotypes as genotypes_lib
from darts_jax.errors import UserError

Genotype = genotypes_lib.Genotype

_EPOCH_RE = re.compile(r'epoch_(\d+)')


def epoch_of(path: str) -> int | None:
  """Epoch number in a file name like `epoch_007.npz`, else None."""
  m = _EPOCH_RE.search(os.path.basename(path))
  return int(m.group(1)) if m else None



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

"""Export an evaluation run: restore it, write each format, check it, write the manifest.

`export_run(workdir, formats, out_dir)` is what `python -m darts_jax.export` runs. Every
format is loaded back the way a user loads it (jax.export.deserialize, onnxruntime) and
its logits are compared with darts_jax's own on a batch of the dataset's test split (or
random pixels when the split is not here): the largest absolute difference is printed and
kept in the manifest.
"""

from __future__ import annotations

import importlib.metadata
import os
from typing import Callable, Sequence

import jax

import darts_jax
from darts_jax.deploy import loading
from darts_jax.deploy import manifest as manifest_lib
from darts_jax.deploy import onnx as onnx_lib
from darts_jax.deploy import stablehlo
from darts_jax.errors import UserError

EXPORT_DIR = 'export'
# The largest |exported - JAX| logits difference a format is expected to stay within,
# relative to the largest |logit| where that is above 1 (float32 rounding scales with it).
TOLERANCE = 1e-4


def parse_formats(text: str) -> tuple[str, ...]:
  """'stablehlo', 'onnx', 'all' or a comma-separated list -> formats in preference order."""
  wanted = [f.strip() for f in (text or '').split(',') if f.strip()]
  if 'all' in wanted:
    return manifest_lib.FORMATS
  unknown = [f for f in wanted if f not in manifest_lib.FORMATS]
  if unknown or not wanted:
    raise UserError(f'unknown --format {",".join(unknown) or "(empty)"}; use stablehlo, onnx '
                    'or all')
  return tuple(f for f in manifest_lib.FORMATS if f in wanted)


def _prepare_out(out_dir: str) -> str:
  if os.path.exists(out_dir) and not os.path.isdir(out_dir):
    raise UserError(f'--out {out_dir} is a file; pass a directory')
  try:
    os.makedirs(out_dir, exist_ok=True)
  except OSError as e:
    raise UserError(f'cannot create {out_dir} ({e.strerror}); pass a writable --out') from e
  if not os.access(out_dir, os.W_OK):
    raise UserError(f'{out_dir} is not writable; pass a writable --out')
  return out_dir


def _versions(formats: Sequence[str]) -> dict[str, str]:
  found = {'darts_jax': darts_jax.__version__, 'jax': jax.__version__,
           'jaxlib': importlib.metadata.version('jaxlib')}
  if 'onnx' in formats:
    found.update(onnx_lib.versions())
  return found


def export_run(workdir: str, formats: Sequence[str] = manifest_lib.FORMATS,
               out_dir: str | None = None,
               platforms: Sequence[str] = stablehlo.PLATFORMS,
               log: Callable[[str], None] = print) -> dict:
  """Exports `workdir`'s network as `formats` into `out_dir` (default <workdir>/export);
  returns the manifest (also written to <out_dir>/manifest.json)."""
  platforms = stablehlo.check_platforms(platforms)
  if 'onnx' in formats:  # Before the slow part: a missing package is one line at once.
    for name in onnx_lib.PACKAGES:
      onnx_lib.require(name)
  run = loading.load_run(workdir)
  out_dir = _prepare_out(out_dir or os.path.join(workdir, EXPORT_DIR))
  log(f'restored {run.workdir} at step {run.step}: {run.space.name} space, {run.info.name}, '
      f'test_acc {run.result.get("test_acc")}')
  images, check = loading.check_batch(run)
  reference = loading.reference_logits(run, images)
  scale = float(abs(reference).max())
  infer, shape = run.inference(), run.image_shape
  entries = {}
  for fmt in formats:
    if fmt == 'stablehlo':
      entry = stablehlo.save(infer, shape, out_dir, platforms)
      if not stablehlo.runs_here(platforms):
        entries[fmt] = dict(entry, max_abs_diff=None, within_tolerance=None)
        log(f'{fmt}: {os.path.join(out_dir, entry["file"])} ({entry["bytes"]:,} bytes); not '
            f'checked: exported for {",".join(platforms)} only, this is a '
            f'{jax.default_backend()} machine')
        continue
      logits_fn = stablehlo.load(os.path.join(out_dir, entry['file']))
    else:
      entry = onnx_lib.save(infer, shape, out_dir, model_name=f'darts_jax_{run.space.name}')
      logits_fn = onnx_lib.load(os.path.join(out_dir, entry['file']))
    diff = loading.max_abs_diff(logits_fn(images), reference)
    allowed = TOLERANCE * max(1., scale)
    entry.update(max_abs_diff=diff, max_abs_logit=scale, within_tolerance=diff <= allowed)
    entries[fmt] = entry
    relative = (f' ({diff / scale:.1e} of the largest |logit|, {scale:.3g})'
                if scale > 1 and diff > 0 else '')
    log(f'{fmt}: {os.path.join(out_dir, entry["file"])} ({entry["bytes"]:,} bytes, '
        f'{entry["export_seconds"]:.1f} s); max |{fmt} - jax| logits {diff:.2e}{relative} '
        f'on {check}')
    if diff > allowed:
      log(f'warning: the {fmt} logits differ from JAX\'s by {diff:.2e}, more than '
          f'{allowed:.2g}')
  manifest = manifest_lib.build(run, entries, _versions(formats), check)
  log(f'manifest: {manifest_lib.write(out_dir, manifest)}')
  return manifest

"""StableHLO export through `jax.export`: weights baked in, the batch size symbolic.

The exported function takes uint8 NHWC images of any batch size ('b') and returns the
float32 logits; the dataset's normalization runs inside. `model.stablehlo` holds
`exported.serialize()`, which plain JAX loads and runs without darts_jax:

  exported = jax.export.deserialize(open('model.stablehlo', 'rb').read())
  logits = exported.call(images)

The program is lowered for several platforms at once (default cpu and cuda): the
depthwise convolutions are platform dependent (darts_jax.deploy.lowering.STABLEHLO),
the rest is the same StableHLO on every platform.
"""

from __future__ import annotations

import os
import time
from typing import Sequence

import jax
import numpy as np

from darts_jax import files
from darts_jax.deploy import lowering
from darts_jax.deploy import manifest as manifest_lib
from darts_jax.errors import UserError

PLATFORMS = ('cpu', 'cuda')
KNOWN_PLATFORMS = ('cpu', 'cuda', 'rocm', 'tpu')


def check_platforms(platforms: Sequence[str]) -> tuple[str, ...]:
  platforms = tuple(p.strip() for p in platforms if p.strip())
  unknown = [p for p in platforms if p not in KNOWN_PLATFORMS]
  if unknown or not platforms:
    raise UserError(f'unknown platform(s) {", ".join(unknown) or "(none given)"} for '
                    f'--platforms; use a comma-separated subset of {",".join(KNOWN_PLATFORMS)}')
  return platforms


def export(infer, image_shape: Sequence[int],
           platforms: Sequence[str] = PLATFORMS) -> jax.export.Exported:
  """`infer` (uint8 images -> logits) exported for `platforms`, batch polymorphic."""
  spec = lowering.input_spec(image_shape)
  portable = lowering.rewrite(infer, spec, lowering.STABLEHLO)
  return jax.export.export(jax.jit(portable), platforms=tuple(platforms))(spec)


def save(infer, image_shape, out_dir: str, platforms: Sequence[str] = PLATFORMS) -> dict:
  """Exports and writes `model.stablehlo`; the manifest entry (file, bytes, seconds)."""
  start = time.perf_counter()
  exported = export(infer, image_shape, platforms)
  serialized = exported.serialize()
  path = os.path.join(out_dir, manifest_lib.FILES['stablehlo'])
  files.write_atomic(path, lambda f: f.write(serialized))
  return {
      'file': os.path.basename(path),
      'bytes': len(serialized),
      'export_seconds': round(time.perf_counter() - start, 3),
      'platforms': list(exported.platforms),
      'calling_convention_version': exported.calling_convention_version,
  }


def _here() -> tuple[str, ...]:
  platform = jax.default_backend()  # 'gpu' on CUDA and ROCm machines.
  return {'gpu': ('cuda', 'rocm')}.get(platform, (platform,))


def runs_here(platforms: Sequence[str]) -> bool:
  """Whether a program exported for `platforms` runs on this machine's default backend."""
  return bool(set(_here()) & set(platforms))


def load(path: str):
  """The logits function of a serialized export: uint8 images (numpy) -> numpy logits."""
  try:
    with open(path, 'rb') as f:
      exported = jax.export.deserialize(bytearray(f.read()))
  except OSError as e:
    raise UserError(f'cannot read {path} ({e.strerror}); export the run again') from e
  except Exception as e:  # pylint: disable=broad-except
    raise UserError(f'{path} is not a serialized jax.export program ({type(e).__name__}); '
                    'export the run again') from e
  if not runs_here(exported.platforms):
    raise UserError(f'{path} was exported for {", ".join(exported.platforms)}, not for this '
                    f'{jax.default_backend()} machine; export again with '
                    f'--platforms={_here()[0]}')

  def logits(images: np.ndarray) -> np.ndarray:
    return np.asarray(exported.call(np.asarray(images, np.uint8)))

  return logits

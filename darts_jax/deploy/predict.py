"""Classify image files with an exported network (either format), and print the top classes.

`load_model(model_dir, fmt)` reads the manifest and loads one format (StableHLO preferred
when both are there); `read_image(path, shape)` converts a file to the manifest's input
(PIL: grayscale or RGB, resized to H x W, uint8); `top_k` turns logits into the k most
probable classes.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Sequence

import numpy as np

from darts_jax.deploy import manifest as manifest_lib
from darts_jax.errors import UserError

TOP_K = 5


@dataclasses.dataclass(frozen=True)
class Model:
  """An exported network: its manifest and its logits function (uint8 NHWC -> logits)."""
  manifest: dict
  format: str
  logits: Callable[[np.ndarray], np.ndarray]

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.manifest['input']['shape'][1:])

  @property
  def classes(self) -> list[str]:
    return list(self.manifest['classes'])


def choose_format(manifest: dict, fmt: str | None) -> str:
  """`fmt`, or the preferred format of those exported (StableHLO, then ONNX)."""
  exported = [f for f in manifest_lib.FORMATS if f in manifest['formats']]
  if fmt:
    if fmt not in manifest_lib.FORMATS:
      raise UserError(f'unknown --format {fmt!r}; use one of {", ".join(manifest_lib.FORMATS)}')
    if fmt not in exported:
      raise UserError(f'this export has no {fmt} model (it has {", ".join(exported)}); pass '
                      f'--format={exported[0]} or export again with --format={fmt}')
    return fmt
  if not exported:
    raise UserError(f'the manifest lists no format this darts_jax reads '
                    f'({", ".join(manifest["formats"])}); export the run again')
  return exported[0]


def load_model(model_dir: str, fmt: str | None = None) -> Model:
  manifest = manifest_lib.read(model_dir)
  fmt = choose_format(manifest, fmt)
  path = os.path.join(model_dir, manifest['formats'][fmt]['file'])
  if not os.path.exists(path):
    raise UserError(f'{path} not found (the manifest lists it); export the run again')
  if fmt == 'stablehlo':
    from darts_jax.deploy import stablehlo  # pylint: disable=g-import-not-at-top
    logits = stablehlo.load(path)
  else:
    from darts_jax.deploy import onnx  # pylint: disable=g-import-not-at-top
    logits = onnx.load(path)
  return Model(manifest, fmt, logits)


def read_image(path: str, shape: Sequence[int]) -> np.ndarray:
  """The image file as uint8 [H, W, C] for an input of `shape` (H, W, C): converted to
  grayscale (C = 1) or RGB (C = 3) and resized (bilinear) to H x W."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from PIL import UnidentifiedImageError  # pylint: disable=g-import-not-at-top
  height, width, channels = shape
  if channels not in (1, 3):
    raise UserError(f'the model takes {channels}-channel images; predict reads grayscale '
                    'and RGB only')
  if not os.path.exists(path):
    raise UserError(f'image {path} not found')
  if os.path.isdir(path):
    raise UserError(f'{path} is a directory; pass image files')
  try:
    with Image.open(path) as image:
      image = image.convert('L' if channels == 1 else 'RGB')
      if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR)
      pixels = np.asarray(image, np.uint8)
  except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
    raise UserError(f'cannot read image {path} ({type(e).__name__}: '
                    f'{" ".join(str(e).split())[:120]}); pass a PNG, JPEG or another file '
                    'PIL reads') from e
  return pixels[..., None] if channels == 1 else pixels


def softmax(logits: np.ndarray) -> np.ndarray:
  z = np.asarray(logits, np.float64)
  z = np.exp(z - z.max(axis=-1, keepdims=True))
  return z / z.sum(axis=-1, keepdims=True)


def top_k(logits: np.ndarray, classes: Sequence[str], k: int = TOP_K
          ) -> list[list[tuple[str, float]]]:
  """Per row of logits, the k most probable (class name, probability), best first."""
  probs = softmax(logits)
  k = min(k, probs.shape[-1])
  order = np.argsort(-probs, axis=-1, kind='stable')[:, :k]
  return [[(classes[i], float(row[i])) for i in idx] for row, idx in zip(probs, order)]


def predict_files(model: Model, paths: Sequence[str], k: int = TOP_K
                  ) -> list[tuple[str, list[tuple[str, float]]]]:
  """(path, top-k) per image file, in one batch; UserError on the first unreadable file."""
  if not paths:
    raise UserError('no image given; pass image files after the flags, e.g. '
                    'python -m darts_jax.predict --model=DIR digit.png')
  images = np.stack([read_image(p, model.image_shape) for p in paths])
  return list(zip(paths, top_k(model.logits(images), model.classes, k)))


def format_predictions(results, fmt: str) -> str:
  """The CLI's text: the path, then one '  <probability>  <class>' line per class."""
  lines = []
  for path, top in results:
    lines.append(f'{path} ({fmt}):')
    lines.extend(f'  {prob:.4f}  {name}' for name, prob in top)
  return '\n'.join(lines)

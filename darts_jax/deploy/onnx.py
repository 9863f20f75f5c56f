"""ONNX export through jax2onnx, checked with onnxruntime (both imported lazily).

The graph takes uint8 NHWC `images` with a symbolic batch dimension 'b' and returns float32
`logits`; the normalization runs inside. jax2onnx converts a jaxpr primitive by primitive,
so the network is handed to it rewritten (darts_jax.deploy.lowering.ONNX): the depthwise
and dilated convolutions become grouped convolutions (ONNX Conv, group=C, dilations), the
average pool's box sum becomes pads and slices, every pad a `jnp.pad`. A primitive it still
cannot convert is one UserError naming it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import logging
import os
import re
import time
from typing import Sequence

import numpy as np

from darts_jax import files
from darts_jax.deploy import lowering
from darts_jax.deploy import manifest as manifest_lib
from darts_jax.errors import UserError

OPSET = 23
PACKAGES = ('jax2onnx', 'onnx', 'onnxruntime')
# The versions tested. jax2onnx 0.17.1 pins orbax-checkpoint<0.11.37, which darts_jax's
# orbax-checkpoint>=0.12 excludes; it imports no orbax, so it installs without its pins.
_INSTALL = {
    'jax2onnx': 'pip install onnx==1.23.2 onnx-ir==1.1.0 onnxruntime==1.32.0 equinox dm-pix '
                '&& pip install --no-deps jax2onnx==0.17.1',
    'onnx': 'pip install onnx==1.23.2',
    'onnxruntime': 'pip install onnxruntime==1.32.0',
}


def require(name: str):
  """The module `name` of PACKAGES; UserError with the install command when it is missing."""
  try:
    return importlib.import_module(name)
  except ImportError as e:
    raise UserError(f'{name} is not installed ({e}): ONNX export needs {", ".join(PACKAGES)}, '
                    f'ONNX inference onnxruntime; {_INSTALL[name]}, or use '
                    '--format=stablehlo') from e


def versions() -> dict[str, str]:
  """The installed versions of the ONNX packages ('' for a missing one)."""
  found = {}
  for name in PACKAGES:
    try:
      found[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      found[name] = ''
  return found


def _conversion_error(e: Exception) -> UserError:
  text = ' '.join(str(e).split())
  match = re.search(r"primitive '([^']+)'", text)
  version = versions()['jax2onnx']
  if match:
    return UserError(
        f"jax2onnx {version} cannot convert the JAX primitive '{match.group(1)}' (no plugin "
        'for it); export --format=stablehlo instead, or map the primitive to standard lax '
        'ops in darts_jax.deploy.lowering.ONNX (a jax2onnx plugin would also do)')
  return UserError(f'jax2onnx {version} could not convert the network ({type(e).__name__}: '
                   f'{text[:300]}); export --format=stablehlo instead')


@contextlib.contextmanager
def _quiet():
  """jax2onnx logs its progress at INFO on the root logger, onnx_ir a warning per shape
  value it does not serialize: both only while converting."""
  loggers = [logging.getLogger(), logging.getLogger('onnx_ir')]
  levels = [logger.level for logger in loggers]
  loggers[0].setLevel(max(levels[0], logging.WARNING))
  loggers[1].setLevel(logging.ERROR)
  try:
    yield
  finally:
    for logger, level in zip(loggers, levels):
      logger.setLevel(level)


def export(infer, image_shape: Sequence[int], opset: int = OPSET, model_name='darts_jax'):
  """`infer` (uint8 images -> logits) as an onnx.ModelProto, batch dimension 'b'."""
  jax2onnx = require('jax2onnx')
  require('onnx')
  spec = lowering.input_spec(image_shape)
  portable = lowering.rewrite(infer, spec, lowering.ONNX, inline_own=True, fold=True)
  try:
    with _quiet():
      return jax2onnx.to_onnx(portable, [spec], model_name=model_name, opset=opset,
                              input_names=[manifest_lib.INPUT_NAME],
                              output_names=[manifest_lib.OUTPUT_NAME])
  except Exception as e:  # pylint: disable=broad-except
    # jax2onnx raises NotImplementedError, TypeError, ValueError, ... from its plugins.
    raise _conversion_error(e) from e


def save(infer, image_shape, out_dir: str, model_name: str = 'darts_jax') -> dict:
  """Converts and writes `model.onnx` (one self-contained file); its manifest entry."""
  start = time.perf_counter()
  model = export(infer, image_shape, model_name=model_name)
  serialized = model.SerializeToString()
  path = os.path.join(out_dir, manifest_lib.FILES['onnx'])
  files.write_atomic(path, lambda f: f.write(serialized))
  ops = sorted({node.op_type for node in model.graph.node})
  return {
      'file': os.path.basename(path),
      'bytes': len(serialized),
      'export_seconds': round(time.perf_counter() - start, 3),
      'opset': OPSET,
      'input': manifest_lib.INPUT_NAME,
      'output': manifest_lib.OUTPUT_NAME,
      'onnx_ops': ops,
  }


def load(path: str):
  """The logits function of an ONNX file under onnxruntime: uint8 images -> logits."""
  ort = require('onnxruntime')
  if not os.path.exists(path):
    raise UserError(f'{path} not found; export the run again with --format=onnx')
  try:
    session = ort.InferenceSession(path, providers=ort.get_available_providers())
  except Exception as e:  # pylint: disable=broad-except
    raise UserError(f'onnxruntime cannot load {path} ({" ".join(str(e).split())[:200]}); '
                    'export the run again') from e

  def logits(images: np.ndarray) -> np.ndarray:
    feed = {manifest_lib.INPUT_NAME: np.ascontiguousarray(images, np.uint8)}
    return session.run([manifest_lib.OUTPUT_NAME], feed)[0]

  return logits

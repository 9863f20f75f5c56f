"""manifest.json of an exported network: what a user needs to feed it and read it.

The manifest says the input (uint8 NHWC pixels, the batch dimension null / "b"), that
the normalization is inside the model, the classes, where the network comes from
(space, genotype, test accuracy, checkpoint step), the versions that wrote it, each
format's file, and a few lines of Python that load each format without darts_jax.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence

from darts_jax import files
from darts_jax.errors import UserError

MANIFEST = 'manifest.json'
FORMAT_VERSION = 1
FILES = {'stablehlo': 'model.stablehlo', 'onnx': 'model.onnx'}
FORMATS = tuple(FILES)  # The order predict prefers them in.
INPUT_NAME, OUTPUT_NAME = 'images', 'logits'

_DIGITS = [str(i) for i in range(10)]
_CIFAR10 = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship',
            'truck']
_FASHION_MNIST = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
                  'Sneaker', 'Bag', 'Ankle boot']
# CIFAR-100's fine labels in label order (the archive's meta file: alphabetical).
_CIFAR100 = """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge
bus butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch
crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo
keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse
mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy
porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail
snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger
tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm""".split()
CLASS_NAMES = {'digits': _DIGITS, 'mnist': _DIGITS, 'cifar10': _CIFAR10,
               'fashion_mnist': _FASHION_MNIST, 'cifar100': _CIFAR100}


def class_names(dataset: str, num_classes: int) -> list[str]:
  """The dataset's class names in label order; "0".."n-1" where none are known here
  (ImageNet: the label index, as tfds orders the synsets)."""
  names = CLASS_NAMES.get(dataset)
  if names is None or len(names) != num_classes:
    return [str(i) for i in range(num_classes)]
  return list(names)


def load_snippets(formats: Sequence[str]) -> dict[str, str]:
  """Per format, Python that runs a batch through the export without darts_jax (run it in
  the export directory)."""
  shape = "[4] + manifest['input']['shape'][1:]"  # A batch of 4 of the input's shape.
  snippets = {
      'stablehlo': (
          'import json, jax, numpy as np\n'
          "manifest = json.load(open('manifest.json'))\n"
          f"exported = jax.export.deserialize(open('{FILES['stablehlo']}', 'rb').read())\n"
          f'images = np.zeros({shape}, np.uint8)  # raw uint8 NHWC pixels, any batch size\n'
          'logits = np.asarray(exported.call(images))\n'),
      'onnx': (
          'import json, numpy as np, onnxruntime\n'
          "manifest = json.load(open('manifest.json'))\n"
          f"session = onnxruntime.InferenceSession('{FILES['onnx']}')\n"
          f'images = np.zeros({shape}, np.uint8)  # raw uint8 NHWC pixels, any batch size\n'
          f"logits = session.run(['{OUTPUT_NAME}'], {{'{INPUT_NAME}': images}})[0]\n"),
  }
  return {f: snippets[f] for f in formats}


def build(run, formats: Mapping[str, dict], versions: Mapping[str, str],
          check: str) -> dict[str, Any]:
  """The manifest of `run` (a darts_jax.deploy.loading.Run) exported as `formats`
  (format -> its entry: file, bytes, seconds, max_abs_diff, ...)."""
  info = run.info
  height, width, channels = run.image_shape
  result = run.result
  return {
      'format_version': FORMAT_VERSION,
      'formats': dict(formats),
      'input': {
          'name': INPUT_NAME,
          'shape': [None, height, width, channels],
          'symbolic_shape': ['b', height, width, channels],
          'dtype': 'uint8',
          'layout': 'NHWC',
          'channels': 'grayscale' if channels == 1 else 'RGB',
      },
      'output': {'name': OUTPUT_NAME, 'shape': [None, info.num_classes], 'dtype': 'float32',
                 'meaning': 'logits: softmax gives the class probabilities'},
      'normalization': {
          'inside_model': True,
          'note': 'feed raw uint8 pixels: the model scales them to [0, 1] (x / 255), then '
                  'computes (x - mean) / std per channel',
          'scale': 1 / 255,
          'mean': list(info.mean),
          'std': list(info.std),
      },
      'classes': class_names(info.name, info.num_classes),
      'dataset': info.name,
      'space': run.space.name,
      'genotype': run.space.to_text(run.arch),
      'test_acc': result.get('test_acc'),
      'test_top5_acc': result.get('test_top5_acc'),
      'params': result.get('params'),
      'checkpoint_step': run.step,
      'workdir': run.workdir,
      'check': check,
      'versions': dict(versions),
      'load': load_snippets(list(formats)),
  }


def write(out_dir: str, manifest: Mapping[str, Any]) -> str:
  path = os.path.join(out_dir, MANIFEST)
  # As checkpoint.write_json, without importing orbax into predict.
  files.write_atomic(path, lambda f: f.write((json.dumps(manifest, indent=2) + '\n').encode()))
  return path


def read(model_dir: str) -> dict[str, Any]:
  """The manifest of an export directory; UserError naming the fix."""
  if not os.path.isdir(model_dir):
    raise UserError(f'model directory {model_dir} not found; pass the directory that '
                    'python -m darts_jax.export wrote (default <workdir>/export)')
  path = os.path.join(model_dir, MANIFEST)
  if not os.path.exists(path):
    raise UserError(f'{model_dir} has no {MANIFEST}; export a run into it first: '
                    'python -m darts_jax.export --workdir=RUN')
  try:
    with open(path, encoding='utf-8') as f:
      manifest = json.load(f)
  except (OSError, ValueError) as e:
    raise UserError(f'cannot read {path} ({e}); export the run again') from e
  if not isinstance(manifest, dict) or not manifest.get('formats'):
    raise UserError(f'{path} lists no exported format; export the run again')
  return manifest

"""Compile time, step time and peak memory of the search step: one JSON line per case.

Command (the full table; the 8-cell cases take many minutes each on a 2-core CPU):
  python experiments/benchmark.py --cases=all
  python experiments/benchmark.py --cases=digits          # seconds-scale sanity run
  python experiments/benchmark.py --cases=cifar_first_b16 --steps=3

Each case runs in its own subprocess (so peak RSS is per case) and times:
  init_seconds     jitted init of weights and batch statistics;
  compile_seconds  lowering + XLA compile of the whole bilevel step (no cache);
  step_seconds     median wall time of `--steps` steps after the first.
Data are random uint8 images (the step includes augmentation and normalisation).
"""

import json
import os
import resource
import subprocess
import sys
import time

from absl import app
from absl import flags

flags.DEFINE_string('cases', 'digits', 'Comma-separated case names, or "all".')
flags.DEFINE_integer('steps', 3, 'Timed steps per case (after one warm-up step).')
flags.DEFINE_string('case', None, 'Internal: run one case in this process.')
FLAGS = flags.FLAGS

# name: (dataset, layers, init_channels, batch, order)
CASES = {
    'digits': ('digits', 2, 8, 64, 'first'),
    'cifar_first_b16': ('cifar10', 8, 16, 16, 'first'),
    'cifar_first_b64': ('cifar10', 8, 16, 64, 'first'),
    'cifar_second_exact_b16': ('cifar10', 8, 16, 16, 'second_exact'),
    'cifar_second_fd_b16': ('cifar10', 8, 16, 16, 'second_fd'),
}


def run_case(name):
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from darts_jax import configs, data, search  # pylint: disable=g-import-not-at-top
  dataset, layers, channels, batch, order = CASES[name]
  config = configs.search_config({'first': 'first', 'second_exact': 'second',
                                  'second_fd': 'second_fd'}[order])
  config.dataset.name = dataset
  config.model.layers = layers
  config.model.init_channels = channels
  config.train.batch_size = batch
  info = data.get_info(dataset)
  model = search.build_model(config, info.num_classes)
  t = time.time()
  state = jax.block_until_ready(search.init_state(model, config, info))
  init_s = time.time() - t
  step = jax.jit(search.make_search_step(model, config, info, steps_per_epoch=100))
  rng = np.random.default_rng(0)
  batch_data = {'image': rng.integers(0, 256, (batch,) + info.image_shape, dtype=np.uint8),
                'label': rng.integers(0, info.num_classes, (batch,)).astype(np.int32)}
  t = time.time()
  compiled = step.lower(state, batch_data, batch_data).compile()
  compile_s = time.time() - t
  state, m = jax.block_until_ready(compiled(state, batch_data, batch_data))
  times = []
  for _ in range(FLAGS.steps):
    t = time.time()
    state, m = jax.block_until_ready(compiled(state, batch_data, batch_data))
    times.append(time.time() - t)
  print(json.dumps({
      'case': name, 'dataset': dataset, 'layers': layers, 'init_channels': channels,
      'batch': batch, 'order': order, 'backend': jax.default_backend(),
      'device': str(jax.devices()[0].device_kind), 'num_devices': jax.device_count(),
      'init_seconds': round(init_s, 2), 'compile_seconds': round(compile_s, 2),
      'step_seconds': round(float(np.median(times)), 4),
      'peak_rss_gb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
      'loss_finite': bool(np.isfinite(m['train_loss'])),
  }), flush=True)


def main(argv):
  del argv
  if FLAGS.case:
    run_case(FLAGS.case)
    return
  names = list(CASES) if FLAGS.cases == 'all' else FLAGS.cases.split(',')
  for name in names:
    if name not in CASES:
      sys.exit(f'error: unknown case {name!r}; known cases: {sorted(CASES)}')
    env = dict(os.environ, JAX_ENABLE_COMPILATION_CACHE='false')
    proc = subprocess.run([sys.executable, __file__, f'--case={name}', f'--steps={FLAGS.steps}'],
                          env=env, capture_output=True, text=True, check=False)
    lines = [l for l in proc.stdout.splitlines() if l.startswith('{')]
    if proc.returncode or not lines:
      print(json.dumps({'case': name, 'error': proc.stderr.strip().splitlines()[-1:]}))
    else:
      print(lines[-1], flush=True)


if __name__ == '__main__':
  app.run(main)

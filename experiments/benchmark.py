"""Compile time, step time and peak memory of the search step: one JSON line per case.

Command (the full table; the 8-cell cases take many minutes each on a 2-core CPU):
  python experiments/benchmark.py --cases=all
  python experiments/benchmark.py --cases=digits          # seconds-scale sanity run
  python experiments/benchmark.py --cases=cifar_first_b16 --steps=3
  python experiments/benchmark.py --cases=cifar4_first_b16 --depthwise_impl=loop
  python experiments/benchmark.py --cases=digits --devices=1,2,4,8   # fake CPU devices
  python experiments/benchmark.py --cases=methods     # every search method, both spaces
  python experiments/benchmark.py --cases=floor_b64   # multiply-adds and matmul rate
  python experiments/benchmark.py --cases=imagenet_pc_darts_b128  # PC-DARTS's ImageNet search
  python experiments/benchmark.py --cases=speed       # issue #8's targets as a table (12-30 min CPU)
  python experiments/benchmark.py --cases=speed --pytorch_records=/tmp/torch.jsonl  # vs PyTorch
                                                      # measured here (pytorch_reference.py)
  python experiments/benchmark.py --cases=population  # 1, 2, 4, 8 seeds in one program

Each case runs in its own subprocess (so peak RSS is per case) and times:
  init_seconds     jitted init of weights and batch statistics;
  compile_seconds  lowering + XLA compile of the whole bilevel step (no cache);
  lower_seconds    the lowering part of it (tracing to StableHLO);
  step_seconds     median wall time of `--steps` steps after the first;
  projected_*      CIFAR cases: one search epoch (25k/25k, 391 steps at batch 64) and
                   the 50-epoch search from step_seconds (issue #8; on a GPU run
                   `--cases=speed`).
Data are random uint8 images (the step includes augmentation and normalisation).
`--cases=speed` runs SPEED_CASES and then prints a markdown table of the speed
targets (issue #8) against those measurements and the PyTorch reference numbers.
"""

import json
import os
import resource
import subprocess
import sys
import time

from absl import app
from absl import flags

import benchmark_tables  # experiments/benchmark_tables.py, beside this script.

flags.DEFINE_string('cases', 'digits', 'Comma-separated case names, or "all".')
flags.DEFINE_integer('steps', 3, 'Timed steps per case (after one warm-up step).')
flags.DEFINE_string('case', None, 'Internal: run one case in this process.')
flags.DEFINE_string('depthwise_impl', 'auto',
                    'config.model.depthwise_impl for every case: auto, xla, masked, slices, loop.')
flags.DEFINE_string('devices', '', 'Comma-separated device counts, e.g. 1,2,4,8: runs each '
                    'case on that many fake CPU devices (data parallel, same global batch); '
                    'on one CPU this measures the sharding overhead, not a speedup.')
flags.DEFINE_string('cell_impl', 'auto', 'config.model.cell_impl for every search case: '
                    'auto, grouped (edges batched per source state), scan (lax.scan over edges).')
flags.DEFINE_integer('cpu_opt_level', 1, 'XLA:CPU backend optimization level of the step '
                     '(the trainers use darts_jax.runtime.parallel.CPU_BACKEND_OPT_LEVEL).')
flags.DEFINE_string('cpu_opt_preset', 'CPU_OPT_PRESET_FAST_COMPILE',
                    'XLA:CPU optimization preset of the step: CPU_OPT_PRESET_FAST_COMPILE, '
                    'CPU_OPT_PRESET_DEFAULT or CPU_OPT_PRESET_FAST_RUNTIME (the trainers use '
                    'darts_jax.runtime.parallel.CPU_OPT_PRESET).')
flags.DEFINE_string('pytorch_records', '', 'JSON lines printed by experiments/pytorch_reference.py '
                    'on this machine: --cases=speed compares with them instead of the notes.')
flags.DEFINE_string('remat', 'auto', 'config.model.remat for the search cases (auto, true, false).')
flags.DEFINE_string('compute_dtype', 'float32',
                    'config.model.compute_dtype for the search cases (float32, bfloat16).')
FLAGS = flags.FLAGS

# N searches in one program (config.seeds, darts_jax/train/population.py), name:
# (dataset, layers, init_channels, batch, seeds); first order. n1 is the sequential baseline.
POPULATION_CASES = {
    f'population_{data}_n{n}': (dataset, layers, channels, batch, n)
    for data, dataset, layers, channels, batch in (('digits', 'digits', 2, 8, 64),
                                                   ('cifar_b16', 'cifar10', 8, 16, 16))
    for n in (1, 2, 4, 8)
}

# name: (dataset, layers, init_channels, batch, order)
CASES = {
    'digits': ('digits', 2, 8, 64, 'first'),
    'cifar2_first_b16': ('cifar10', 2, 16, 16, 'first'),
    'cifar4_first_b16': ('cifar10', 4, 16, 16, 'first'),
    'cifar4_second_exact_b16': ('cifar10', 4, 16, 16, 'second_exact'),
    'cifar_first_b16': ('cifar10', 8, 16, 16, 'first'),
    'cifar_first_b64': ('cifar10', 8, 16, 64, 'first'),
    'cifar_second_exact_b16': ('cifar10', 8, 16, 16, 'second_exact'),
    'cifar_second_fd_b16': ('cifar10', 8, 16, 16, 'second_fd'),
    'cifar_second_exact_b64': ('cifar10', 8, 16, 64, 'second_exact'),
    # config.arch.share_train_grad: the weight step reuses the virtual step's train gradient.
    'cifar_second_exact_shared_b64': ('cifar10', 8, 16, 64, 'second_exact_shared'),
}

# Evaluation ("augment") network, name: (dataset, genotype, layers, init_channels, batch).
AUGMENT_CASES = {
    'augment_digits': ('digits', 'DARTS_V2', 3, 8, 64),
    'augment_darts_v2_b96': ('cifar10', 'DARTS_V2', 20, 36, 96),
}


# Search methods at the same batch on a small network (darts_jax/methods/),
# name: (space, method, dataset, layers or cells per stage, init_channels, batch, skip_unused_ops).
# DARTS space: 2 cells of 2 nodes (5 edges) with none, skip, avg pool, dil_conv_3x3 (the
# 8-op, 4-node cell compiles for ~8 minutes per case on a loaded 2-core CPU); NAS-Bench-201:
# all 5 ops, 1 cell per stage. `*_dense` runs GDAS / random paths computing every op.
METHOD_CASES = {
    f'{space}_{method}{suffix}_b32': (space, method, 'cifar10', 2 if space == 'darts' else 1, 8,
                                      32, suffix == '')
    for space in ('darts', 'nb201')
    for method in ('darts', 'gdas', 'pc_darts', 'drnas', 'random_ws')
    for suffix in (('', '_dense') if method in ('gdas', 'random_ws') else ('',))
}


# PC-DARTS's search on ImageNet (experiments/search_imagenet.py: 224-pixel input, three
# stride-2 stem convs, 8 cells, C=16, K=2), name: batch on the devices of the run. The
# paper's batch is 1024 over 8 GPUs.
IMAGENET_SEARCH_CASES = {'imagenet_pc_darts_b16': 16, 'imagenet_pc_darts_b128': 128}
# Its search-train split: 10% of ImageNet's 1,281,167 train images (search_subset 0.125,
# train_portion 0.8).
IMAGENET_SEARCH_TRAIN_IMAGES = 128_116

# The arithmetic floor (issue #8), name: (layers, init_channels, batch). Counts the
# floating-point operations of the first-order and exact second-order steps of the
# 8-cell search network with XLA's HLO cost analysis (on the 'grouped' cells with
# XLA's convolutions, a program without loops, so every op is counted once per run;
# multiply-adds = flops / 2), and times a 2048^2 float32 matrix multiply on this
# machine. floor_seconds = flops / matmul rate: the step time if every op ran at
# the matmul rate.
FLOOR_CASES = {'floor_b64': (8, 16, 64), 'floor_b16': (8, 16, 16)}

SPEED_CASES = ('floor_b64', 'cifar_first_b16', 'cifar_first_b64', 'cifar_second_exact_b64',
               'cifar_second_exact_shared_b64')

def random_batch(info, batch: int) -> dict:
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  return {'image': rng.integers(0, 256, (batch,) + info.image_shape, dtype=np.uint8),
          'label': rng.integers(0, info.num_classes, (batch,)).astype(np.int32)}


def measure_step(step, state, batches) -> dict:
  """Lowers, compiles and times `step(state, *batches)` with the batches sharded over all
  devices and the state replicated and donated: the fields every case reports."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from darts_jax.runtime import parallel  # pylint: disable=g-import-not-at-top
  mesh = parallel.make_mesh()
  state = parallel.replicate(state, mesh)
  batches = [parallel.shard_batch(b, mesh) for b in batches]
  t, cpu = time.time(), time.process_time()
  options = parallel.compiler_options(FLAGS.cpu_opt_level, FLAGS.cpu_opt_preset)
  # The state is donated, as the trainers' `parallel.jit(step, donate_argnums=(0,))` do.
  lowered = jax.jit(step, compiler_options=options, donate_argnums=(0,)).lower(state, *batches)
  lower_s = time.time() - t
  compiled = lowered.compile()
  compile_s, compile_cpu_s = time.time() - t, time.process_time() - cpu
  mem = compiled.memory_analysis()
  state, m = jax.block_until_ready(compiled(state, *batches))
  times, cpu_times = [], []
  for _ in range(FLAGS.steps):
    t, cpu = time.time(), time.process_time()
    state, m = jax.block_until_ready(compiled(state, *batches))
    times.append(time.time() - t)
    cpu_times.append(time.process_time() - cpu)
  return {
      'backend': jax.default_backend(), 'device': str(jax.devices()[0].device_kind),
      'num_devices': jax.device_count(),
      'compile_seconds': round(compile_s, 2), 'lower_seconds': round(lower_s, 2),
      'stablehlo_mchars': round(len(lowered.as_text()) / 1e6, 2),
      # CPU seconds of this process (all threads): less sensitive to other load than wall time.
      'compile_cpu_seconds': round(compile_cpu_s, 2),
      'step_seconds': round(float(np.median(times)), 4),
      'step_cpu_seconds': round(float(np.median(cpu_times)), 4),
      # XLA's buffer assignment for the step: temporaries (activations) + arguments.
      'step_temp_mb': round(mem.temp_size_in_bytes / 2**20, 1) if mem else None,
      'step_argument_mb': round(mem.argument_size_in_bytes / 2**20, 1) if mem else None,
      'peak_rss_gb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
      'loss_finite': bool(np.all(np.isfinite(m['train_loss']))),
      'load_avg_1min': round(os.getloadavg()[0], 2),
  }


def search_parts(config, info):
  """(state, unjitted bilevel step, init seconds) of a search config, as the trainer
  builds them."""
  from darts_jax.train import parts as train_parts  # pylint: disable=g-import-not-at-top
  parts = train_parts.SearchParts.from_config(config, info.num_classes)
  state, init_s = timed_init(lambda: parts.init_state(info.image_shape))
  return state, parts.search_step(info, steps_per_epoch=100), init_s


def timed_init(init_fn):
  import jax  # pylint: disable=g-import-not-at-top
  t = time.time()
  state = jax.block_until_ready(init_fn())
  return state, round(time.time() - t, 2)


def run_method_case(name):
  """Step time and XLA memory of one search method's bilevel step vs DARTS's."""
  from darts_jax import data  # pylint: disable=g-import-not-at-top
  from darts_jax.configs import benchmarks  # pylint: disable=g-import-not-at-top
  space, method, dataset, layers, channels, batch, skip = METHOD_CASES[name]
  config = (benchmarks.search_nb201 if space == 'nb201'
            else benchmarks.search_cifar10)(method)
  config.dataset.name = dataset
  config.model.layers = layers
  config.model.init_channels = channels
  config.model.depthwise_impl = FLAGS.depthwise_impl
  config.model.cell_impl = FLAGS.cell_impl
  config.model.remat = FLAGS.remat
  config.train.batch_size = batch
  config.method.skip_unused_ops = skip
  config.method.partial_channels = 4
  if space == 'darts':
    config.search_space.steps = config.search_space.multiplier = 2
    config.search_space.primitives = ['none', 'skip_connect', 'avg_pool_3x3', 'dil_conv_3x3']
  config.method.arch_start_epoch = 0
  info = data.get_info(dataset)
  state, step, init_s = search_parts(config, info)
  batch_data = random_batch(info, batch)
  print(json.dumps({
      'case': name, 'space': space, 'method': method, 'skip_unused_ops': skip,
      'dataset': dataset, 'layers': layers, 'init_channels': channels, 'batch': batch,
      'init_seconds': init_s, **measure_step(step, state, [batch_data, batch_data]),
  }), flush=True)


def run_imagenet_search_case(name):
  """The PC-DARTS ImageNet search step at one batch size, projected to its 50 epochs."""
  from darts_jax import data  # pylint: disable=g-import-not-at-top
  from darts_jax.configs import benchmarks  # pylint: disable=g-import-not-at-top
  batch = IMAGENET_SEARCH_CASES[name]
  config = benchmarks.search_imagenet()
  config.train.batch_size = batch
  config.method.arch_start_epoch = 0  # Time the bilevel step, not the warm-up's.
  config.model.depthwise_impl = FLAGS.depthwise_impl
  config.model.cell_impl = FLAGS.cell_impl
  config.model.remat = FLAGS.remat
  config.model.compute_dtype = FLAGS.compute_dtype
  info = data.get_info('imagenet2012')
  state, step, init_s = search_parts(config, info)
  batch_data = random_batch(info, batch)
  timings = measure_step(step, state, [batch_data, batch_data])
  steps = -(-IMAGENET_SEARCH_TRAIN_IMAGES // batch)
  print(json.dumps({
      'case': name, 'dataset': 'imagenet2012', 'method': 'pc_darts', 'batch': batch,
      'init_seconds': init_s, **timings,
      'projected_epoch_minutes': round(steps * timings['step_seconds'] / 60, 1),
      f'projected_{config.train.epochs}_epoch_search_hours': round(
          config.train.epochs * steps * timings['step_seconds'] / 3600, 2),
  }), flush=True)


def run_augment_case(name):
  """Compile seconds and training images per second of the evaluation network."""
  from darts_jax import configs, data  # pylint: disable=g-import-not-at-top
  from darts_jax.spaces.darts import eval_network, zoo  # pylint: disable=g-import-not-at-top
  from darts_jax.train import augment  # pylint: disable=g-import-not-at-top
  dataset, genotype_name, layers, channels, batch = AUGMENT_CASES[name]
  config = configs.augment_digits_config() if dataset == 'digits' else configs.augment_config()
  config.model.layers = layers
  config.model.init_channels = channels
  config.train.batch_size = batch
  config.model.depthwise_impl = FLAGS.depthwise_impl
  info = data.get_info(dataset)
  model = eval_network.build_augment_model(config.model, zoo.load_genotype(genotype_name),
                                           info.num_classes)
  state, init_s = timed_init(lambda: augment.init_state(model, info.image_shape, config.seed))
  step = augment.make_train_step(model, config, info, steps_per_epoch=100)
  measured = measure_step(step, state, [random_batch(info, batch)])
  print(json.dumps({
      'case': name, 'dataset': dataset, 'genotype': genotype_name, 'layers': layers,
      'init_channels': channels, 'batch': batch, 'init_seconds': init_s, **measured,
      'images_per_second': round(batch / measured['step_seconds'], 1),
  }), flush=True)


def run_case(name):
  from darts_jax import configs, data  # pylint: disable=g-import-not-at-top
  from darts_jax.nn import conv  # pylint: disable=g-import-not-at-top
  from darts_jax.spaces.darts import supernet  # pylint: disable=g-import-not-at-top
  from darts_jax.train import checks  # pylint: disable=g-import-not-at-top
  dataset, layers, channels, batch, order = CASES[name]
  config = configs.search_config({'first': 'first', 'second_exact': 'second',
                                  'second_fd': 'second_fd'}[order.removesuffix('_shared')])
  config.arch.share_train_grad = order.endswith('_shared')
  config.dataset.name = dataset
  config.model.layers = layers
  config.model.init_channels = channels
  config.train.batch_size = batch
  config.model.depthwise_impl = FLAGS.depthwise_impl
  config.model.cell_impl = FLAGS.cell_impl
  config.model.remat = FLAGS.remat
  config.model.compute_dtype = FLAGS.compute_dtype
  checks.check_compute_dtype(config.model)
  info = data.get_info(dataset)
  state, step, init_s = search_parts(config, info)
  batch_data = random_batch(info, batch)
  timings = measure_step(step, state, [batch_data, batch_data])
  print(json.dumps({
      'case': name, 'dataset': dataset, 'layers': layers, 'init_channels': channels,
      'batch': batch, 'order': order, 'depthwise_impl': conv.resolve_impl(FLAGS.depthwise_impl),
      'cell_impl': supernet.resolve_cell_impl(FLAGS.cell_impl),
      'remat': supernet.resolve_remat(FLAGS.remat), 'compute_dtype': FLAGS.compute_dtype,
      'init_seconds': init_s, **timings,
      **projected_search_cost(dataset, batch, timings['step_seconds'], config.train.epochs),
  }), flush=True)


def projected_search_cost(dataset: str, batch: int, step_seconds: float, epochs: int) -> dict:
  """A CIFAR search epoch (25k search-train images in steps of `batch`) and the whole
  search, projected from the measured step time: the end-of-epoch validation pass and
  data loading are not included (the trainer reports its data wait separately)."""
  if dataset not in ('cifar10', 'cifar100'):
    return {}
  steps = -(-25_000 // batch)
  return {'projected_epoch_minutes': round(steps * step_seconds / 60, 1),
          f'projected_{epochs}_epoch_search_hours': round(epochs * steps * step_seconds / 3600, 2)}


def run_population_case(name):
  """One program of N seeds' first-order search steps (the trainer's population step)."""
  from darts_jax import configs, data  # pylint: disable=g-import-not-at-top
  from darts_jax.train import parts as train_parts  # pylint: disable=g-import-not-at-top
  from darts_jax.train import population  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  dataset, layers, channels, batch, n = POPULATION_CASES[name]
  config = configs.search_config('first')
  config.dataset.name = dataset
  config.model.update(layers=layers, init_channels=channels, depthwise_impl=FLAGS.depthwise_impl,
                      cell_impl=FLAGS.cell_impl, remat=FLAGS.remat)
  config.train.batch_size = batch
  info = data.get_info(dataset)
  search_parts = train_parts.SearchParts.from_config(config, info.num_classes)
  seeds = tuple(range(n))
  state, init_s = timed_init(lambda: population.init_states(search_parts, info.image_shape,
                                                            seeds))
  step = population.population_step(search_parts, info, 100, seeds, shared_order=False)
  one = random_batch(info, batch)
  stacked = {k: np.stack([v] * n) for k, v in one.items()}
  print(json.dumps({'case': name, 'dataset': dataset, 'layers': layers,
                    'init_channels': channels, 'batch': batch, 'seeds': n,
                    'init_seconds': init_s, **measure_step(step, state, [stacked, stacked])}),
        flush=True)


def run_floor_case(name):
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from darts_jax import configs, data  # pylint: disable=g-import-not-at-top
  from darts_jax.train import parts as train_parts  # pylint: disable=g-import-not-at-top
  layers, channels, batch = FLOOR_CASES[name]
  n = 2048
  a = jax.random.normal(jax.random.key(0), (n, n))
  matmul = jax.jit(lambda x: x @ x)
  jax.block_until_ready(matmul(a))
  times = []
  for _ in range(5):
    t = time.time()
    jax.block_until_ready(matmul(a))
    times.append(time.time() - t)
  gflops = 2 * n**3 / float(np.median(times)) / 1e9
  out = {'case': name, 'layers': layers, 'init_channels': channels, 'batch': batch,
         'matmul_gflops': round(gflops, 1)}
  for order in ('first', 'second'):
    config = configs.search_config(order)
    config.dataset.name = 'cifar10'
    config.model.layers = layers
    config.model.init_channels = channels
    config.model.cell_impl = 'grouped'
    config.model.depthwise_impl = 'xla'
    config.model.remat = 'false'  # Count each op once.
    info = data.get_info('cifar10')
    parts = train_parts.SearchParts.from_config(config, info.num_classes)
    state = jax.eval_shape(lambda: parts.init_state(info.image_shape))
    images = jax.ShapeDtypeStruct((batch,) + info.image_shape, jnp.uint8)
    labels = jax.ShapeDtypeStruct((batch,), jnp.int32)
    b = {'image': images, 'label': labels}
    step = parts.search_step(info, steps_per_epoch=100)
    cost = jax.jit(step).lower(state, b, b).cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    key = {'first': 'first_order', 'second': 'second_order_exact'}[order]
    out[f'{key}_gmacs'] = round(cost['flops'] / 2e9, 1)
    out[f'{key}_floor_seconds'] = round(cost['flops'] / (gflops * 1e9), 2)
  print(json.dumps(out), flush=True)


def fake_devices_env(num_devices: str) -> dict:
  """Environment of a subprocess with `num_devices` fake CPU devices ('' keeps the default)."""
  if not num_devices:
    return {}
  flag = f'--xla_force_host_platform_device_count={int(num_devices)}'
  return {'JAX_PLATFORMS': 'cpu',
          'XLA_FLAGS': ' '.join(filter(None, [os.environ.get('XLA_FLAGS', ''), flag]))}


def main(argv):
  del argv
  if FLAGS.case:
    if FLAGS.case in METHOD_CASES:
      run_method_case(FLAGS.case)
      return
    if FLAGS.case in FLOOR_CASES:
      run_floor_case(FLAGS.case)
      return
    if FLAGS.case in IMAGENET_SEARCH_CASES:
      run_imagenet_search_case(FLAGS.case)
      return
    if FLAGS.case in POPULATION_CASES:
      run_population_case(FLAGS.case)
      return
    (run_augment_case if FLAGS.case in AUGMENT_CASES else run_case)(FLAGS.case)
    return
  known = (list(CASES) + list(AUGMENT_CASES) + list(METHOD_CASES) + list(FLOOR_CASES)
           + list(IMAGENET_SEARCH_CASES) + list(POPULATION_CASES))
  names = known if FLAGS.cases == 'all' else FLAGS.cases.split(',')
  if FLAGS.cases == 'methods':
    names = list(METHOD_CASES)
  if FLAGS.cases == 'speed':
    names = list(SPEED_CASES)
  if FLAGS.cases == 'population':
    names = list(POPULATION_CASES)
  results = {}
  runs = [(name, d) for name in names for d in FLAGS.devices.split(',')]
  for name, num_devices in runs:
    if name not in known:
      sys.exit(f'error: unknown case {name!r}; use all, methods, speed, population or known '
               'cases: '
               f'{sorted(known)}')
    env = dict(os.environ, JAX_ENABLE_COMPILATION_CACHE='false', **fake_devices_env(num_devices))
    proc = subprocess.run([sys.executable, __file__, f'--case={name}', f'--steps={FLAGS.steps}',
                           f'--depthwise_impl={FLAGS.depthwise_impl}',
                           f'--cell_impl={FLAGS.cell_impl}',
                           f'--cpu_opt_level={FLAGS.cpu_opt_level}',
                           f'--cpu_opt_preset={FLAGS.cpu_opt_preset}',
                           f'--remat={FLAGS.remat}', f'--compute_dtype={FLAGS.compute_dtype}'],
                          env=env, capture_output=True, text=True, check=False)
    lines = [l for l in proc.stdout.splitlines() if l.startswith('{')]
    if proc.returncode or not lines:
      errors = [l for l in proc.stderr.splitlines() if 'Error' in l or 'error' in l]
      print(json.dumps({'case': name, 'returncode': proc.returncode, 'error': errors[-1:]}))
    else:
      print(lines[-1], flush=True)
      results[name] = json.loads(lines[-1])
  if FLAGS.cases == 'speed':
    print(benchmark_tables.speed_table({**benchmark_tables.read_records(FLAGS.pytorch_records),
                                        **results}), flush=True)
  if FLAGS.cases == 'population':
    print(benchmark_tables.population_table(results), flush=True)


if __name__ == '__main__':
  app.run(main)

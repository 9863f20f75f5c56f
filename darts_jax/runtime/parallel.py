"""Data parallelism: one SPMD program over a device mesh.

The batch is sharded over the mesh's 'data' axis and everything else is
replicated; `jax.jit` then inserts the collectives (the mean loss, and so the
batch-norm statistics, are over the global batch). A population of searches adds a
'seed' axis: each seed's state and batches live on its row of devices.
"""

import itertools
import math

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from darts_jax.errors import UserError

DATA_AXIS = 'data'
SEED_AXIS = 'seed'


def make_mesh() -> jax.sharding.Mesh:
  # Auto axes: jit propagates the batch sharding and inserts the collectives.
  return jax.make_mesh((jax.device_count(),), (DATA_AXIS,),
                       axis_types=(jax.sharding.AxisType.Auto,))


def make_population_mesh(num_seeds: int) -> jax.sharding.Mesh:
  """A (seed, data) mesh: gcd(seeds, devices) rows of seeds, the rest data parallel
  (4 seeds on 8 devices: 4 x 2)."""
  rows = math.gcd(num_seeds, jax.device_count())
  return jax.make_mesh((rows, jax.device_count() // rows), (SEED_AXIS, DATA_AXIS),
                       axis_types=(jax.sharding.AxisType.Auto,) * 2)


def shard_seeds(tree, mesh):
  """A population's state (leading seed axis) over the mesh's seed axis."""
  return jax.device_put(tree, NamedSharding(mesh, P(SEED_AXIS)))


def shard_seed_batches(tree, mesh):
  """Batches stacked per seed [seeds, batch, ...] over (seed, data); one process."""
  return jax.device_put(jax.tree.map(np.asarray, tree),
                        NamedSharding(mesh, P(SEED_AXIS, DATA_AXIS)))


def check_batch(batch_size: int, num_devices: int, process_count: int = 1,
                name: str = 'config.train.batch_size') -> None:
  """A global batch must split evenly over the devices and over the processes."""
  if batch_size <= 0:
    raise UserError(f'{name} must be positive, got {batch_size}')
  if batch_size % num_devices:
    raise UserError(f'{name} {batch_size} does not divide across {num_devices} devices; '
                    f'set {name} to a multiple of {num_devices}')
  if batch_size % process_count:
    raise UserError(f'{name} {batch_size} does not divide across {process_count} '
                    f'processes; set {name} to a multiple of {process_count}')


def process_rows(batch_size: int, process_index: int, process_count: int) -> slice:
  """This process's contiguous rows of a global batch (as in `data.epoch_batches`)."""
  local = batch_size // process_count
  return slice(process_index * local, (process_index + 1) * local)


def distributed_args(mode: str, coordinator_address: str = '', num_processes: int = 0,
                     process_id: int = -1):
  """Keyword arguments of `jax.distributed.initialize`, or None for one process.

  mode 'off': one process (unless a coordinator address is given); 'auto': let
  JAX detect the cluster (Cloud TPU VM, SLURM, Open MPI, Kubernetes); an
  explicit coordinator address needs the process count and this process's id.
  """
  if mode not in ('off', 'auto'):
    raise UserError(f'unknown --distributed={mode}; use "off" or "auto"')
  if coordinator_address:
    if num_processes <= 0 or not 0 <= process_id < num_processes:
      raise UserError('--coordinator_address needs --num_processes > 0 and --process_id in '
                      f'[0, num_processes); got {num_processes} and {process_id}')
    return {'coordinator_address': coordinator_address, 'num_processes': num_processes,
            'process_id': process_id}
  if num_processes > 0 or process_id >= 0:
    raise UserError('--num_processes/--process_id need --coordinator_address=HOST:PORT '
                    '(or use --distributed=auto on a managed cluster)')
  return {} if mode == 'auto' else None


def initialize_distributed(args) -> None:
  """Joins the multi-process run; must run before any other JAX call."""
  if args is None:
    return
  try:
    jax.distributed.initialize(**args)
  except ValueError as e:  # E.g. --distributed=auto outside a cluster JAX recognizes.
    raise UserError(f'cannot start the multi-process run ({e}); outside Cloud TPU, SLURM or '
                    'Open MPI pass --coordinator_address, --num_processes and --process_id'
                    ) from e


def replicate(tree, mesh):
  return jax.device_put(tree, NamedSharding(mesh, P()))


def shard_batch(tree, mesh):
  """Global arrays from this process's share of the batch (leading axis)."""
  sharding = NamedSharding(mesh, P(DATA_AXIS))
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)


# Seconds a process waits at a barrier for the others (a slow compile on a loaded host).
BARRIER_TIMEOUT_S = 3600
_COMPILES = itertools.count()


def wait_for_all_processes(name: str) -> None:
  """Barrier through the coordination service (no device collective, long timeout)."""
  if jax.process_count() == 1:
    return
  from jax._src import distributed  # pylint: disable=g-import-not-at-top
  distributed.global_state.client.wait_at_barrier(name, BARRIER_TIMEOUT_S * 1000)


def _signature(args):
  leaves, treedef = jax.tree.flatten(args)
  return treedef, tuple((np.shape(x), np.result_type(x), getattr(x, 'sharding', None))
                        for x in leaves)


# XLA:CPU at its default backend optimization level (2) ran the 2-cell search step
# 1.5x slower than at level 1 (3.84 s vs 2.53 s at batch 16, same compile time);
# level 0 was 8x slower (BUILD_NOTES.md).
CPU_BACKEND_OPT_LEVEL = 1
# XLA:CPU vectorizes for 256-bit registers by default. Preferring 512 bits made the
# 8-cell b64 search step ~4% faster on an AVX-512 Xeon, in an A/B run of both programs
# in one process (BUILD_NOTES.md); it is a preference, and a CPU without AVX-512 has
# no 512-bit registers for it to use (not measured on one).
CPU_PREFER_VECTOR_WIDTH = 512
# XLA:CPU's FAST_COMPILE preset skips optimization passes that spend compile time to
# save run time. On the 8-cell search step it cut the compile by 17-31% and the step
# did not get slower (A/B of both programs in one process; BUILD_NOTES.md).
CPU_OPT_PRESET = 'CPU_OPT_PRESET_FAST_COMPILE'


def compiler_options(cpu_opt_level: int = CPU_BACKEND_OPT_LEVEL,
                     cpu_opt_preset: str = CPU_OPT_PRESET) -> dict | None:
  """XLA options for `jax.jit` on this backend (None: XLA's defaults)."""
  if jax.default_backend() != 'cpu':
    return None
  return {'xla_backend_optimization_level': cpu_opt_level,
          'xla_cpu_prefer_vector_width': CPU_PREFER_VECTOR_WIDTH,
          'xla_cpu_opt_preset': cpu_opt_preset}


def compile_ahead(fn, args, **jit_kwargs):
  """`jax.jit(fn)` compiled for `args` (arrays or jax.ShapeDtypeStruct with shardings)
  before any step runs; with several processes, all finish compiling before any runs
  (see `jit`)."""
  jit_kwargs.setdefault('compiler_options', compiler_options())
  compiled = jax.jit(fn, **jit_kwargs).lower(*args).compile()
  wait_for_all_processes(f'compiled {getattr(fn, "__name__", "fn")} {next(_COMPILES)}')
  return compiled


def abstract(tree):
  """Shapes, dtypes and shardings of a tree of arrays (for `compile_ahead`)."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                      tree)


def jit(fn, **jit_kwargs):
  """`jax.jit(fn)`; with several processes, all compile before any runs.

  CPU collectives (gloo) give up after 30 s, so a process that finished
  compiling much earlier than another would fail its first collective: each
  new signature is compiled ahead of time, then the processes meet at a barrier.
  """
  jit_kwargs.setdefault('compiler_options', compiler_options())
  jitted = jax.jit(fn, **jit_kwargs)
  if jax.process_count() == 1:
    return jitted
  compiled = {}

  def call(*args):
    key = _signature(args)
    if key not in compiled:
      compiled[key] = jitted.lower(*args).compile()
      # Barrier names must be unique in the run; every process compiles in the same order.
      wait_for_all_processes(f'compiled {getattr(fn, "__name__", "fn")} {next(_COMPILES)}')
    return compiled[key](*args)

  return call

"""Data parallelism: one SPMD program over a 1-D device mesh.

The batch is sharded over the mesh's 'data' axis and everything else is
replicated; `jax.jit` then inserts the collectives (the mean loss, and so the
batch-norm statistics, are over the global batch).
"""

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from darts_jax.errors import UserError

DATA_AXIS = 'data'


def make_mesh() -> jax.sharding.Mesh:
  # Auto axes: jit propagates the batch sharding and inserts the collectives.
  return jax.make_mesh((jax.device_count(),), (DATA_AXIS,),
                       axis_types=(jax.sharding.AxisType.Auto,))


def check_batch(batch_size: int, num_devices: int, process_count: int = 1) -> None:
  if batch_size % num_devices:
    raise UserError(f'batch size {batch_size} does not divide across {num_devices} devices; '
                    f'set config.train.batch_size to a multiple of {num_devices}')
  if batch_size % process_count:
    raise UserError(f'batch size {batch_size} does not divide across {process_count} '
                    'processes; use a multiple of the process count')


def replicate(tree, mesh):
  return jax.device_put(tree, NamedSharding(mesh, P()))


def shard_batch(tree, mesh):
  """Global arrays from this process's share of the batch (leading axis)."""
  sharding = NamedSharding(mesh, P(DATA_AXIS))
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)

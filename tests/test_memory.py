"""Memory before the run: XLA's compiled bytes against a limit, the largest batch that fits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from darts_jax import configs
from darts_jax import data
from darts_jax.errors import UserError
from darts_jax.runtime import memory
from darts_jax.runtime import parallel
from darts_jax.train import loop
from darts_jax.train import parts as train_parts
from darts_jax.train import search
from darts_jax.train import settings


@pytest.mark.parametrize('bytes_of', [
    lambda b: 1000 + 37 * b,  # Linear, as a step's bytes about are.
    lambda b: 500 + b * b,  # Not linear: the search falls back to bisection.
    lambda b: 4096 * (1 + b // 24),  # Steps (buffers rounded up).
])
@pytest.mark.parametrize('multiple', [1, 4])
def test_largest_fitting_equals_a_brute_force_scan(bytes_of, multiple):
  limit, cap = 9000, 400
  compiled = []

  def counted(b):
    assert b % multiple == 0 and 0 < b <= cap
    compiled.append(b)
    return bytes_of(b)

  best = memory.largest_fitting(counted, limit, multiple, cap, {})
  expected = max([b for b in range(multiple, cap + 1, multiple) if bytes_of(b) <= limit],
                 default=0)
  assert best == expected
  assert len(compiled) <= 3 * int(np.ceil(np.log2(cap / multiple))) + 3
  assert len(set(compiled)) == len(compiled)


def test_a_linear_memory_is_found_in_a_few_compiles():
  compiled = []
  best = memory.largest_fitting(lambda b: compiled.append(b) or 1000 + 37 * b, 9000, 1, 4096,
                                {512: 1000 + 37 * 512})
  assert best == (9000 - 1000) // 37 and len(compiled) <= 3


def test_needed_bytes_counts_arguments_outputs_and_temporaries():
  x = jnp.zeros((1000,), jnp.float32)
  compiled = jax.jit(lambda x: (x * 2.0, x + 1.0)).lower(x).compile()
  stats = compiled.memory_analysis()
  assert memory.needed_bytes(compiled) >= 3 * 4000
  assert memory.needed_bytes(compiled) == (
      stats.argument_size_in_bytes + stats.output_size_in_bytes - stats.alias_size_in_bytes
      + stats.temp_size_in_bytes + stats.generated_code_size_in_bytes)
  donated = jax.jit(lambda x: x * 2.0, donate_argnums=0).lower(x).compile()
  assert memory.needed_bytes(donated) < memory.needed_bytes(compiled)


def _compile_matmul(batch):
  w = jax.ShapeDtypeStruct((256, 256), jnp.float32)
  x = jax.ShapeDtypeStruct((batch, 256), jnp.float32)
  return jax.jit(lambda w, x: jnp.tanh(x @ w) @ w).lower(w, x).compile()


def test_a_batch_over_the_limit_names_the_largest_that_fits():
  bytes_at = {b: memory.needed_bytes(_compile_matmul(b)) for b in (64, 512)}
  limit = memory.Limit((bytes_at[64] + bytes_at[512]) // 2, 'config.memory_limit_gb')
  with pytest.raises(UserError) as error:
    memory.fit_batch(_compile_matmul, 512, limit, multiple=8, cap=4096)
  message = str(error.value)
  assert '\n' not in message and 'config.train.batch_size=512' in message
  best = int(message.split('the largest batch that fits is ')[1].split()[0])
  assert best % 8 == 0 and 64 < best < 512
  assert memory.needed_bytes(_compile_matmul(best)) <= limit.bytes
  assert memory.needed_bytes(_compile_matmul(best + 8)) > limit.bytes
  assert f'--config.train.batch_size={best}' in message


def test_auto_picks_the_largest_batch_and_a_fitting_request_compiles_once():
  limit = memory.Limit(memory.needed_bytes(_compile_matmul(200)), 'test')
  compiled, batch = memory.fit_batch(_compile_matmul, None, limit, multiple=8, cap=4096)
  assert batch == 200 and memory.needed_bytes(compiled) <= limit.bytes
  calls = []
  memory.fit_batch(lambda b: calls.append(b) or _compile_matmul(b), 96, limit, 8, 4096)
  assert calls == [96]


def test_nothing_fits_is_one_clear_line():
  with pytest.raises(UserError, match='even config.train.batch_size=8 needs .* limit'):
    memory.fit_batch(_compile_matmul, 64, memory.Limit(100, 'test'), 8, 4096)


def test_limit_from_config_or_the_device():
  assert memory.device_limit(2.0).bytes == 2 * memory.GIB
  host = memory.device_limit(0.0)
  assert host.bytes > memory.GIB and 'config.memory_limit_gb' in host.source


@pytest.mark.parametrize('value,expected', [(16, 16), ('auto', None)])
def test_batch_size_setting(value, expected):
  config = configs.search_tiny_config()
  config.train.batch_size = value
  assert settings.batch_size(config.train) == expected


@pytest.mark.parametrize('value', ['big', 0, -4, 2.5])
def test_a_bad_batch_size_is_clear(value):
  config = configs.search_tiny_config()
  config.train.batch_size = value
  with pytest.raises(UserError, match="positive integer or 'auto'"):
    settings.batch_size(config.train)


def _tiny_search_bytes(config, batch):
  """The tiny search step's bytes at `batch`, compiled as the trainer compiles it."""
  info = data.dataset_info(config.dataset)
  mesh = parallel.make_mesh()
  search_parts = train_parts.check_config(config, info)
  split = train_parts.SearchData.from_config(config)
  state = parallel.replicate(search_parts.init_state(info.image_shape), mesh)
  data_parts = [(split.source, idx, k) for k, idx in enumerate((split.train_idx,
                                                                split.val_idx))]
  batches = loop.example_batches(data_parts, batch, parallel.shard_batch, mesh)
  return memory.needed_bytes(parallel.compile_ahead(
      search_parts.search_step(info, 3), (parallel.abstract(state), *batches),
      donate_argnums=(0,)))


@pytest.mark.slow
def test_a_search_over_a_set_limit_stops_and_auto_runs_at_the_named_batch(tmp_path):
  config = configs.search_tiny_config()
  config.train.epochs = 1
  fits, over = _tiny_search_bytes(config, 8), _tiny_search_bytes(config, 9)
  assert fits < over
  config.memory_limit_gb = (fits + over) / 2 / memory.GIB
  with pytest.raises(UserError, match=r'batch_size=16 needs .* the largest batch that fits '
                                      r'is 8 '):
    search.search(config, str(tmp_path / 'refused'))
  config.train.batch_size = 'auto'
  result = search.search(config, str(tmp_path / 'auto'))
  lines = (tmp_path / 'auto' / 'metrics.jsonl').read_text().splitlines()
  assert '"batch_size": 8' in lines[-1] and result['epochs'] == 1

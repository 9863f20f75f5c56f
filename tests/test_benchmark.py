"""The tables of experiments/benchmark.py (experiments/benchmark_tables.py): the speed
targets (issue #8) and populations against sequential runs, from given records."""

import importlib.util
import pathlib

import pytest


@pytest.fixture(scope='module')
def benchmark():
  path = pathlib.Path(__file__).parents[1] / 'experiments' / 'benchmark_tables.py'
  spec = importlib.util.spec_from_file_location('darts_jax_benchmark_tables', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _rows(table: str) -> dict:
  """measure -> (target, measured, met) of the markdown rows."""
  rows = {}
  for line in table.splitlines():
    cells = [c.strip() for c in line.strip('|').split('|')]
    if len(cells) == 4 and cells[0] not in ('measure', '---'):
      rows[cells[0]] = tuple(cells[1:])
  return rows


def _records(backend='cpu', compile_s=64.3, first=21.5, exact=64.9, hours=117.0, shared=51.6):
  return {
      'floor_b64': {'first_order_floor_seconds': 1.04, 'second_order_exact_floor_seconds': 2.69},
      'cifar_first_b16': {'compile_seconds': compile_s, 'backend': backend, 'device': 'x'},
      'cifar_first_b64': {'step_seconds': first, 'peak_rss_gb': 5.0,
                          'projected_50_epoch_search_hours': hours},
      'cifar_second_exact_b64': {'step_seconds': exact},
      'cifar_second_exact_shared_b64': {'step_seconds': shared},
  }


def test_speed_table_computes_ratios_and_checks_targets(benchmark):
  rows = _rows(benchmark.speed_table(_records()))
  assert len(rows) == 11
  by_start = lambda prefix: next(v for k, v in rows.items() if k.startswith(prefix))
  assert by_start('first compile') == ('< 30 s', '64.3 s', 'no')
  assert by_start('speed-up over') == ('>= 2x', f'{2 * 12.4 / 21.5:.2f}x', 'no')
  assert by_start('exact second order / first') == ('<= 2.5x', f'{64.9 / 21.5:.2f}x', 'no')
  assert by_start('the same with the weight step') == ('<= 2.5x', f'{51.6 / 21.5:.2f}x', 'yes')
  assert by_start('multiply-add floor at')[1] == f'{1.04 / 21.5:.0%}'
  assert by_start('peak RSS')[1:] == ('5.0 GB', 'yes')
  # A CPU projection is not checked against the GPU-hour target.
  assert by_start('projected 50-epoch')[1:] == ('117.0 h', '-')

  rows = _rows(benchmark.speed_table(_records('gpu', 20.0, 0.05, 0.12, 0.27)))
  by_start = lambda prefix: next(v for k, v in rows.items() if k.startswith(prefix))
  assert by_start('first compile')[2] == 'yes'
  assert by_start('speed-up over')[2] == 'yes'
  assert by_start('exact second order / first')[2] == 'yes'
  assert by_start('projected 50-epoch')[1:] == ('0.3 h', 'yes')


def test_speed_table_shows_missing_cases_as_dashes(benchmark):
  records = _records()
  del records['cifar_second_exact_b64']
  rows = _rows(benchmark.speed_table(records))
  exact_rows = [v for k, v in rows.items() if 'exact' in k]
  assert len(exact_rows) == 4 and all(v[1:] == ('-', '-') for v in exact_rows)
  assert rows[next(k for k in rows if k.startswith('the same with'))][1] == f'{51.6 / 21.5:.2f}x'
  assert all(v[1] == '-' for v in _rows(benchmark.speed_table({})).values())


def test_speed_table_compares_with_measured_pytorch_records(benchmark, tmp_path):
  path = tmp_path / 'torch.jsonl'
  path.write_text('not json\n'
                  '{"case": "pytorch_first_b64", "step_seconds": 30.0, "peak_rss_gb": 9.2}\n'
                  '{"case": "pytorch_second_exact_b64", "step_seconds": 150.0}\n')
  records = {**benchmark.read_records(str(path)), **_records()}
  rows = _rows(benchmark.speed_table(records))
  by_start = lambda prefix: next(v for k, v in rows.items() if k.startswith(prefix))
  assert any('(measured: 30.00 s)' in k for k in rows)
  assert by_start('speed-up over the PyTorch first-order') == ('>= 2x', f'{30 / 21.5:.2f}x', 'no')
  assert by_start('speed-up over the PyTorch exact') == ('>= 2x', f'{150 / 64.9:.2f}x', 'yes')
  assert by_start('peak RSS') == ('<= 9.2 GB', '5.0 GB', 'yes')
  with pytest.raises(SystemExit, match='pytorch_reference.py'):
    benchmark.read_records(str(tmp_path / 'missing.jsonl'))


def test_population_table_counts_compile_in_the_throughput(benchmark):
  records = {
      'population_digits_n1': {'dataset': 'digits', 'compile_seconds': 10.0,
                               'step_seconds': 0.1, 'peak_rss_gb': 1.0},
      'population_digits_n4': {'dataset': 'digits', 'compile_seconds': 12.0,
                               'step_seconds': 0.3, 'peak_rss_gb': 2.0},
  }
  table = benchmark.population_table(records)
  # 4 x (10 + 220 x 0.1) / (12 + 220 x 0.3) = 128 / 78.
  assert f'| population_digits | 4 | 12.0 | 0.300 | 0.075 | 2.00 | {128 / 78:.2f}x (220) |' in (
      table)
  assert '| population_digits | 2 | - | - | - | - | - |' in table
  assert '| population_digits | 1 | 10.0 | 0.100 | 0.100 | 1.00 | 1.00x (220) |' in table

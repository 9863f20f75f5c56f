"""The markdown tables experiments/benchmark.py prints from its cases' JSON records: the
speed targets (issue #8) and populations of seeds in one program against sequential runs."""

import json
import os
import sys

# The same 8-cell C=16 network hand-written in PyTorch 2.13 on this 2-core CPU, one weight
# step at batch 64: 12.4 s, 9.4 GB (../shared/reference/xla_cpu_notes.md). A first-order
# bilevel step is two such forward+backward passes; no PyTorch exact second-order step at
# batch 64 was measured.
TORCH_WEIGHT_STEP_B64_SECONDS = 12.4
TORCH_WEIGHT_STEP_B64_GB = 9.4


def _ratio(a, b):
  return a / b if a is not None and b else None


def speed_table(results: dict) -> str:
  """Issue #8's targets as a markdown table from the SPEED_CASES' JSON records
  (`results`: case name -> record; a missing or failed case shows as '-'). Records of
  experiments/pytorch_reference.py run on the same machine ('pytorch_first_b64',
  'pytorch_second_exact_b64') replace the PyTorch numbers taken from the notes."""
  get = lambda case, key: results.get(case, {}).get(key)
  backend = next((r['backend'] for r in results.values() if r.get('backend')), '?')
  device = next((r['device'] for r in results.values() if r.get('device')), '?')
  first64 = get('cifar_first_b64', 'step_seconds')
  exact64 = get('cifar_second_exact_b64', 'step_seconds')
  shared64 = get('cifar_second_exact_shared_b64', 'step_seconds')
  torch_first = get('pytorch_first_b64', 'step_seconds')
  if torch_first is None:
    torch_first_name = ('the hand-written PyTorch first-order step at b64 '
                        f'(2 x {TORCH_WEIGHT_STEP_B64_SECONDS} s)')
    torch_first = 2 * TORCH_WEIGHT_STEP_B64_SECONDS
  else:
    torch_first_name = f'the PyTorch first-order step at b64 (measured: {torch_first:.2f} s)'
  torch_exact = get('pytorch_second_exact_b64', 'step_seconds')
  torch_gb = get('pytorch_first_b64', 'peak_rss_gb') or TORCH_WEIGHT_STEP_B64_GB
  # (measure, target, value, format, check: value -> met, or None where nothing is checked)
  rows = [
      ('first compile of the search step (first order, b16, cold cache)', '< 30 s',
       get('cifar_first_b16', 'compile_seconds'), '{:.1f} s', lambda v: v < 30),
      ('first-order step, b64', '-', first64, '{:.2f} s', None),
      (f'speed-up over {torch_first_name}', '>= 2x', _ratio(torch_first, first64), '{:.2f}x',
       lambda v: v >= 2),
      ('exact second-order step, b64', '-', exact64, '{:.2f} s', None),
      ('speed-up over the PyTorch exact second-order step at b64 (double backward'
       + (f'; measured: {torch_exact:.2f} s)' if torch_exact else ')'), '>= 2x',
       _ratio(torch_exact, exact64), '{:.2f}x', lambda v: v >= 2),
      ('exact second order / first order, b64', '<= 2.5x', _ratio(exact64, first64),
       '{:.2f}x', lambda v: v <= 2.5),
      ('the same with the weight step on the virtual step\'s train gradient (at the alphas '
       'before their update; config.arch.share_train_grad)', '<= 2.5x',
       _ratio(shared64, first64), '{:.2f}x', lambda v: v <= 2.5),
      ('multiply-add floor at the matmul rate / first-order step, b64', '-',
       _ratio(get('floor_b64', 'first_order_floor_seconds'), first64), '{:.0%}', None),
      ('multiply-add floor / exact second-order step, b64', '-',
       _ratio(get('floor_b64', 'second_order_exact_floor_seconds'), exact64), '{:.0%}', None),
      (f'peak RSS, first order b64 (PyTorch first-order step: {torch_gb} GB)',
       f'<= {torch_gb} GB', get('cifar_first_b64', 'peak_rss_gb'), '{:.1f} GB',
       lambda v: v <= torch_gb),
      # A GPU-hour target: a CPU projection neither meets nor misses it.
      ('projected 50-epoch first-order search (391 steps of b64 per epoch)', '<= 1 h on a GPU',
       get('cifar_first_b64', 'projected_50_epoch_search_hours'), '{:.1f} h',
       (lambda v: v <= 1) if backend == 'gpu' else None),
  ]
  lines = [f'speed targets (issue #8), backend {backend}, device {device}', '',
           '| measure | target | measured | met |', '|---|---|---|---|']
  for name, target, value, fmt, check in rows:
    shown = '-' if value is None else fmt.format(value)
    met = '-' if value is None or check is None else ('yes' if check(value) else 'no')
    lines.append(f'| {name} | {target} | {shown} | {met} |')
  return '\n'.join(lines)


# Steps of a run, for the population table's throughput "counting compile": the digits
# demo's search (20 epochs of 11 steps) and one CIFAR-10 search epoch at batch 16.
POPULATION_RUN_STEPS = {'digits': 220, 'cifar10': 1563}


def population_table(results: dict) -> str:
  """N seeds in one program (`population_<data>_n<N>` records) against N sequential runs
  of one seed, counting compile: N (compile_1 + S step_1) / (compile_N + S step_N) over a
  run of S steps (POPULATION_RUN_STEPS)."""
  lines = ['| case | seeds | compile s | step s | step s per seed | peak RSS GB | '
           'throughput vs sequential (S steps) |', '|---|---|---|---|---|---|---|']
  groups = sorted({name.rsplit('_n', 1)[0] for name in results if name.startswith('population_')})
  for group in groups:
    one = results.get(f'{group}_n1')
    for n in (1, 2, 4, 8):
      r = results.get(f'{group}_n{n}')
      if not r or 'step_seconds' not in r:
        lines.append(f'| {group} | {n} | - | - | - | - | - |')
        continue
      steps = POPULATION_RUN_STEPS.get(r.get('dataset'), 100)
      ratio = '-'
      if one and 'step_seconds' in one:
        sequential = n * (one['compile_seconds'] + steps * one['step_seconds'])
        ratio = f'{sequential / (r["compile_seconds"] + steps * r["step_seconds"]):.2f}x ({steps})'
      lines.append(f'| {group} | {n} | {r["compile_seconds"]:.1f} | {r["step_seconds"]:.3f} | '
                   f'{r["step_seconds"] / n:.3f} | {r["peak_rss_gb"]:.2f} | {ratio} |')
  return '\n'.join(lines)


def read_records(path: str) -> dict:
  """case -> record of a JSON-lines file ('' gives none); a later line replaces an earlier one."""
  if not path:
    return {}
  if not os.path.exists(path):
    sys.exit(f'error: --pytorch_records={path!r} does not exist; run '
             'experiments/pytorch_reference.py with its output appended to that file.')
  with open(path) as f:
    records = [json.loads(line) for line in f if line.startswith('{')]
  return {r['case']: r for r in records if 'case' in r}

"""Tests for metrics, the pictures (darts_jax.viz) and the report on fake (numpy-only) workdirs."""

from __future__ import annotations

import dataclasses
import glob
import html.parser
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
from PIL import Image
import pytest

from darts_jax import spaces
from darts_jax import visualize
from darts_jax.errors import UserError
from darts_jax.runtime import metrics
from darts_jax.spaces.darts import genotype as G
from darts_jax.spaces.darts import genotype_text
from darts_jax.spaces.darts import zoo
from darts_jax.viz import alpha_plots
from darts_jax.viz import cell_drawing
from darts_jax.viz import report
from darts_jax.viz import run_files
from darts_jax.viz import workdir as viz_workdir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS = 4
DARTS = spaces.get('darts')
NB201 = spaces.get('nb201')
DARTS_EDGES = DARTS().edges()  # (dst, src) per alpha row: (2, 0), (2, 1), (3, 0), ...
NB201_ARCH = ('|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+'
              '|none~0|avg_pool_3x3~1|skip_connect~2|')
NB201_PRIMS = ['none', 'skip_connect', 'nor_conv_1x1', 'nor_conv_3x3', 'avg_pool_3x3']


def _softmax(a):
  e = np.exp(a - a.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _entropy(a):
  p = _softmax(a)
  return float(-(p * np.log(p)).sum(-1).mean())


def make_search_dir(d: str, epochs: int = EPOCHS, seed: int = 0) -> str:
  """Writes the files a search run leaves (random alphas, no training), as the trainer
  writes them: cells, primitives and edges in every alphas file."""
  rng = np.random.default_rng(seed)
  os.makedirs(os.path.join(d, 'alphas'), exist_ok=True)
  with open(os.path.join(d, 'config.json'), 'w') as f:
    json.dump({'dataset': 'cifar10', 'epochs': epochs, 'batch_size': 64,
               'init_channels': 16, 'layers': 8, 'seed': seed}, f)
  meta = {'primitives': np.array(G.PRIMITIVES), 'edges': np.array(DARTS_EDGES, np.int64)}
  n = rng.normal(size=(14, 8)) * 1e-3
  r = rng.normal(size=(14, 8)) * 1e-3
  with open(os.path.join(d, 'metrics.jsonl'), 'w') as mf, \
       open(os.path.join(d, 'genotypes.jsonl'), 'w') as gf:
    for e in range(1, epochs + 1):
      n = n + rng.normal(size=n.shape) * 0.4
      r = r + rng.normal(size=r.shape) * 0.4
      np.savez(os.path.join(d, 'alphas', f'epoch_{e:03d}.npz'), normal=n, reduce=r,
               normal_beta=rng.normal(size=14), **meta)  # PC-DARTS-style 1-d betas.
      g = G.derive_genotype(n, r, G.PRIMITIVES)
      gf.write(json.dumps({'epoch': e, 'genotype': G.genotype_to_json(g),
                           'text': genotype_text.genotype_to_text(g)}) + '\n')
      mf.write(json.dumps({
          'epoch': e, 'step': 100 * e, 'train_loss': 2.0 / e,
          'train_acc': 0.9 - 0.6 / e, 'val_loss': 2.2 / e,
          'val_acc': 0.85 - 0.6 / e, 'lr': 0.025 * (1 - e / (epochs + 1)),
          'alpha_lr': 3e-4, 'alpha_entropy_normal': _entropy(n),
          'alpha_entropy_reduce': _entropy(r), 'step_seconds': 0.05,
          'epoch_seconds': 5.0}) + '\n')
  np.savez(os.path.join(d, 'alphas.npz'), normal=n, reduce=r, **meta)
  zoo.save_genotype(G.derive_genotype(n, r, G.PRIMITIVES), d)
  return d


def make_pipeline_dir(d: str) -> str:
  """search/ + augment/ + random/ + result.json, as a pipeline run writes."""
  make_search_dir(os.path.join(d, 'search'))
  results = {}
  for name, acc in (('augment', 0.97), ('random', 0.955)):
    sub = os.path.join(d, name)
    os.makedirs(sub)
    with open(os.path.join(sub, 'metrics.jsonl'), 'w') as f:
      for e in range(1, 6):
        f.write(json.dumps({'epoch': e, 'train_loss': 1.5 / e,
                            'train_acc': acc - 0.3 / e, 'test_loss': 1.6 / e,
                            'test_acc': acc - 0.35 / e}) + '\n')
    results[name] = {'test_acc': acc, 'params': 3_300_000}
    with open(os.path.join(sub, 'result.json'), 'w') as f:
      json.dump(results[name], f)
  with open(os.path.join(d, 'result.json'), 'w') as f:
    json.dump(results, f)
  with open(os.path.join(d, 'config.json'), 'w') as f:
    json.dump({'mode': 'pipeline'}, f)
  return d


def _check_png(path):
  assert os.path.getsize(path) > 0, path
  with Image.open(path) as im:
    im.verify()


def _check_svg(path):
  root = ET.parse(path).getroot()
  assert root.tag.endswith('svg'), path


def _kept(graphs, prims):
  return {g.alpha_key: [(e.row, list(prims).index(e.op)) for e in g.op_edges
                        if e.row is not None] for g in graphs}


@pytest.fixture(scope='module')
def search_dir(tmp_path_factory):
  return make_search_dir(str(tmp_path_factory.mktemp('search')))


@pytest.fixture(scope='module')
def pipeline_dir(tmp_path_factory):
  return make_pipeline_dir(str(tmp_path_factory.mktemp('pipeline')))


@pytest.fixture
def rectangles(monkeypatch):
  """The (row, column) of every red outline the heat maps draw."""
  from matplotlib import axes, patches  # pylint: disable=g-import-not-at-top
  drawn = []
  add_patch = axes.Axes.add_patch

  def record(self, patch):
    if isinstance(patch, patches.Rectangle) and not patch.get_fill():
      x, y = patch.get_xy()
      drawn.append((round(y + 0.5), round(x + 0.5)))
    return add_patch(self, patch)
  monkeypatch.setattr(axes.Axes, 'add_patch', record)
  return drawn


# ----------------------------------------------------------------------------
# runtime/metrics.py


def test_metric_writer_json_and_tensorboard(tmp_path):
  w = metrics.MetricWriter(str(tmp_path))
  w.write(1, {'epoch': 1, 'train_loss': np.float32(1.5),
              'val_acc': np.array(0.25), 'lr': 0.1, 'bad': float('nan')})
  w.write(np.int64(2), {'epoch': 2, 'train_loss': 1.0})
  w.write_alphas(2, 'normal', _softmax(np.zeros((14, 8))), G.PRIMITIVES)
  w.close()
  lines = (tmp_path / 'metrics.jsonl').read_text().splitlines()
  rows = [json.loads(line) for line in lines]
  assert rows[0] == {'epoch': 1, 'step': 1, 'train_loss': 1.5,
                     'val_acc': 0.25, 'lr': 0.1, 'bad': None}
  assert rows[1]['step'] == 2 and isinstance(rows[1]['step'], int)
  if importlib.util.find_spec('tensorboardX') is None:
    return  # JSON lines only.
  events = glob.glob(str(tmp_path / 'tensorboard' / 'events.out.*'))
  assert events and os.path.getsize(events[0]) > 0


def test_metric_writer_disabled_writes_nothing(tmp_path):
  d = tmp_path / 'off'
  w = metrics.MetricWriter(str(d), enabled=False)
  w.write(1, {'loss': 1.0})
  w.write_alphas(1, 'normal', np.ones((14, 8)), G.PRIMITIVES)
  w.close()
  assert not d.exists()


def test_metric_writer_without_tensorboardx(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, 'tensorboardX', None)  # ImportError.
  w = metrics.MetricWriter(str(tmp_path))
  assert not w.tensorboard_enabled
  w.write(3, {'loss': 0.5})
  w.close()
  assert json.loads((tmp_path / 'metrics.jsonl').read_text()) == {
      'step': 3, 'loss': 0.5}
  assert not (tmp_path / 'tensorboard').exists()


def test_edge_names():
  names = metrics.edge_names(14)
  assert names[:3] == ['edge_2_0', 'edge_2_1', 'edge_3_0']
  assert names[-1] == 'edge_5_4'


def test_progress_quiet_when_not_tty(caplog):
  caplog.set_level(logging.INFO)
  p = metrics.Progress(100, 'epoch 1', log_every_s=1e9, log_every_pct=50)
  for _ in range(100):
    p.update(loss=np.float32(0.5))
  p.close()
  msgs = [r.getMessage() for r in caplog.records if 'epoch 1' in
          r.getMessage()]
  assert len(msgs) == 2, msgs  # One at 50%, one summary.
  assert 'steps/s' in msgs[0] and 'ETA' in msgs[0] and 'loss=0.5' in msgs[0]
  assert 'done: 100 steps' in msgs[1]


def test_progress_tty_bar():
  import io  # pylint: disable=g-import-not-at-top

  class Tty(io.StringIO):

    def isatty(self):
      return True

  s = Tty()
  with metrics.Progress(10, 'e', stream=s) as p:
    for _ in range(10):
      p.update(acc=0.5)
  out = s.getvalue()
  assert out.startswith('\r') and out.endswith('\n')
  assert '10/10' in out and '#' * 20 in out


# ----------------------------------------------------------------------------
# viz/cell_drawing.py


def test_cell_to_dot_has_every_op():
  g = zoo.ZOO['PDARTS']
  graphs = DARTS.cell_graphs(g)
  assert [graph.name for graph in graphs] == ['normal', 'reduce']
  for graph in graphs:
    cell = graph.name
    dot = cell_drawing.cell_to_dot(graph)
    assert dot.startswith(f'digraph {cell} {{')
    assert f'label="{cell} cell"' in dot
    for op, _ in getattr(g, cell):
      assert f'label="{op}"' in dot
    assert dot.count('->') == len(getattr(g, cell)) + len(getattr(g, cell + '_concat'))
    for name in ('c_{k-2}', 'c_{k-1}', 'c_{k}', '"0"', '"3"'):
      assert name in dot
    # Inputs green on one rank, nodes blue, the output yellow fed by grey plain edges.
    assert '  "c_{k-2}" [fillcolor="#b4eeb4"];\n  "c_{k-1}" [fillcolor="#b4eeb4"];\n' in dot
    assert '  { rank=same; "c_{k-2}"; "c_{k-1}"; }\n' in dot
    assert '  "0" [fillcolor="#add8e6"];' in dot
    assert '  "c_{k}" [fillcolor="#eee8aa"];' in dot
    assert '  "3" -> "c_{k}" [color="#777777"];' in dot
  assert ('  "c_{k-2}" -> "0" [label="skip_connect", color="#424242", '
          'fontcolor="#424242"];') in cell_drawing.cell_to_dot(graphs[0])


def test_cell_to_dot_quotes_odd_graph_names():
  graph = DARTS.cell_graphs(zoo.DARTS_V2)[0]
  odd = dataclasses.replace(graph, name='my cell "1"')
  assert cell_drawing.cell_to_dot(odd).startswith('digraph "my cell \\"1\\"" {')


@pytest.mark.skipif(shutil.which('dot') is None, reason='graphviz missing')
def test_draw_arch_with_dot(tmp_path):
  paths = cell_drawing.draw_arch(zoo.DARTS_V2, str(tmp_path), prefix='x_')
  names = sorted(os.path.basename(p) for p in paths)
  assert names == sorted(f'x_{c}.{e}' for c in ('normal', 'reduce')
                         for e in ('dot', 'png', 'svg'))
  for p in paths:
    if p.endswith('.png'):
      _check_png(p)
    elif p.endswith('.svg'):
      _check_svg(p)


def test_draw_arch_without_dot(tmp_path, monkeypatch, caplog):
  monkeypatch.setattr(cell_drawing.shutil, 'which', lambda name: None)
  monkeypatch.setattr(cell_drawing, '_warned_no_dot', False)
  caplog.set_level(logging.WARNING)
  paths = cell_drawing.draw_arch('DARTS_V1', str(tmp_path))
  cell_drawing.draw_arch('DARTS_V1', str(tmp_path), prefix='again_',
                         formats=())  # Only .dot files: no second warning.
  for cell in ('normal', 'reduce'):
    assert (tmp_path / f'{cell}.dot').read_text().startswith('digraph')
    assert (tmp_path / f'again_{cell}.dot').is_file()
    _check_png(str(tmp_path / f'{cell}.png'))
    _check_svg(str(tmp_path / f'{cell}.svg'))
  assert len(paths) == 6
  warnings = [r.getMessage() for r in caplog.records if 'graphviz' in
              r.getMessage()]
  assert len(warnings) == 1, warnings  # Warned once only.
  assert 'apt-get install graphviz' in warnings[0]
  assert 'brew install graphviz' in warnings[0]


def test_draw_cells_of_a_graph_without_positions(tmp_path, monkeypatch):
  """The matplotlib fallback lays out any space's graph (here a 5-node DARTS cell)."""
  monkeypatch.setattr(cell_drawing.shutil, 'which', lambda name: None)
  paths = cell_drawing.draw_cells(DARTS.cell_graphs(zoo.NASNet), str(tmp_path), prefix='n_')
  assert [os.path.basename(p) for p in paths] == [
      f'n_{c}.{e}' for c in ('normal', 'reduce') for e in ('dot', 'png', 'svg')]
  _check_png(str(tmp_path / 'n_reduce.png'))


def test_draw_arch_of_a_json_value(tmp_path):
  paths = cell_drawing.draw_arch(G.genotype_to_json(zoo.DARTS_V2), str(tmp_path),
                                 formats=())
  assert sorted(os.path.basename(p) for p in paths) == ['normal.dot', 'reduce.dot']
  paths = cell_drawing.draw_arch({'nb201_arch': NB201_ARCH}, str(tmp_path), formats=())
  assert [os.path.basename(p) for p in paths] == ['cell.dot']


# ----------------------------------------------------------------------------
# viz/alpha_plots.py


def test_load_alphas_reads_cells_primitives_and_edges(search_dir):
  cells, prims, edges = alpha_plots.load_alphas(os.path.join(search_dir, 'alphas',
                                                             'epoch_001.npz'))
  assert list(cells) == ['normal', 'reduce']  # The 1-d normal_beta is not a cell.
  assert cells['normal'].shape == (14, 8)
  assert prims == list(G.PRIMITIVES)
  assert edges == list(DARTS_EDGES)


def test_heatmap_and_evolution(search_dir, tmp_path):
  cells, prims, edges = alpha_plots.load_alphas(os.path.join(search_dir, 'alphas.npz'))
  assert prims == list(G.PRIMITIVES)
  kept = _kept(DARTS.cell_graphs(zoo.load_genotype(search_dir)), prims)
  heat = alpha_plots.plot_alpha_heatmap(cells, prims, edges, str(tmp_path / 'h.png'),
                                        kept=kept)
  _check_png(heat)
  _check_svg(alpha_plots.plot_alpha_heatmap(cells, prims, edges, str(tmp_path / 'h.svg')))
  files = sorted(glob.glob(os.path.join(search_dir, 'alphas', '*.npz')))
  bad = tmp_path / 'epoch_009.npz'
  bad.write_bytes(b'not an npz')
  evo = alpha_plots.plot_alpha_evolution(files + [str(bad)],
                                         str(tmp_path / 'evo.png'))
  _check_png(evo)
  with pytest.raises(UserError):
    alpha_plots.plot_alpha_evolution([str(bad)], str(tmp_path / 'none.png'))
  with pytest.raises(UserError):
    alpha_plots.load_alphas(str(bad))


def test_heatmap_outlines_come_from_kept(search_dir, tmp_path, rectangles):
  cells, prims, edges = alpha_plots.load_alphas(os.path.join(search_dir, 'alphas.npz'))
  alpha_plots.plot_alpha_heatmap(cells, prims, edges, str(tmp_path / 'plain.png'))
  assert rectangles == []  # No `kept`: nothing outlined.
  kept = {'normal': [(0, 4), (13, 7)], 'reduce': [(5, 1)]}
  alpha_plots.plot_alpha_heatmap(cells, prims, edges, str(tmp_path / 'kept.png'), kept=kept)
  assert rectangles == [(0, 4), (13, 7), (5, 1)]
  graphs = DARTS.cell_graphs(zoo.DARTS_V2)
  assert alpha_plots.kept_from_graphs(graphs, prims) == _kept(graphs, prims)


def test_old_format_alphas_without_edges_still_plot(tmp_path):
  rng = np.random.default_rng(3)
  darts_files, nb201_files = [], []
  for e in range(1, 3):
    darts_files.append(str(tmp_path / f'epoch_{e:03d}.npz'))
    np.savez(darts_files[-1], normal=rng.normal(size=(14, 8)), reduce=rng.normal(size=(14, 8)),
             primitives=np.array(G.PRIMITIVES))
    nb201_files.append(str(tmp_path / 'nb' / f'epoch_{e:03d}.npz'))
    os.makedirs(tmp_path / 'nb', exist_ok=True)
    np.savez(nb201_files[-1], normal=rng.normal(size=(6, 5)))  # Nor primitives.
  cells, prims, edges = alpha_plots.load_alphas(darts_files[0])
  assert list(cells) == ['normal', 'reduce'] and edges == list(DARTS_EDGES)
  _check_png(alpha_plots.plot_alpha_heatmap(cells, prims, edges, str(tmp_path / 'd.png')))
  _check_png(alpha_plots.plot_alpha_evolution(darts_files, str(tmp_path / 'de.png')))
  cells, prims, edges = alpha_plots.load_alphas(nb201_files[0])
  assert list(cells) == ['normal'] and prims == NB201_PRIMS
  assert alpha_plots.edge_labels(edges) == ['1←0', '2←0', '2←1', '3←0', '3←1', '3←2']
  _check_png(alpha_plots.plot_alpha_heatmap(cells, prims, edges, str(tmp_path / 'n.png')))
  _check_png(alpha_plots.plot_alpha_evolution(nb201_files, str(tmp_path / 'ne.png')))
  np.savez(tmp_path / 'odd.npz', normal=rng.normal(size=(7, 3)))  # Unknown layout.
  cells, prims, edges = alpha_plots.load_alphas(str(tmp_path / 'odd.npz'))
  assert edges is None and prims == ['op0', 'op1', 'op2']
  assert alpha_plots.edge_labels(edges, 7)[-1] == 'e6'
  _check_png(alpha_plots.plot_alpha_evolution([str(tmp_path / 'odd.npz')],
                                              str(tmp_path / 'oe.png')))


def test_edge_labels():
  labels = alpha_plots.edge_labels(DARTS_EDGES)
  assert labels[0] == '2←0' and labels[2] == '3←0' and labels[-1] == '5←4'
  assert alpha_plots.layered_edges(14) == list(DARTS_EDGES)
  assert alpha_plots.layered_edges(13) is None


# ----------------------------------------------------------------------------
# viz/workdir.py and the visualize CLI


def test_draw_epoch_writes_latest_and_never_raises(tmp_path, rectangles):
  g = zoo.DARTS_V2
  rng = np.random.default_rng(1)
  a = rng.normal(size=(14, 8))
  alphas = {'normal': a, 'reduce': a, 'normal_beta': np.zeros(14)}
  paths = viz_workdir.draw_epoch(str(tmp_path), 3, DARTS(), g, alphas, G.PRIMITIVES,
                                 DARTS_EDGES)
  plots = tmp_path / 'plots'
  for name in ('epoch_003_normal.png', 'epoch_003_reduce.png',
               'latest_normal.png', 'latest_reduce.png', 'latest_alphas.png'):
    assert str(plots / name) in paths
    _check_png(str(plots / name))
  kept = _kept(DARTS.cell_graphs(g), G.PRIMITIVES)
  assert rectangles == kept['normal'] + kept['reduce']
  # The class, defaults for primitives and edges.
  assert str(plots / 'latest_alphas.png') in viz_workdir.draw_epoch(
      str(tmp_path), 3, DARTS, g, alphas)
  # Bad input: logged, not raised.
  assert viz_workdir.draw_epoch(str(tmp_path), 4, DARTS, 'not a genotype') == []


def test_visualize_cli_in_process(search_dir, tmp_path):
  paths = visualize.run_cli(genotype='DARTS_V2', out=str(tmp_path / 'g'))
  assert {os.path.basename(p) for p in paths} >= {'normal.png', 'reduce.svg'}
  paths = visualize.run_cli(workdir=search_dir, out=str(tmp_path / 'w'))
  names = {os.path.basename(p) for p in paths}
  assert {'normal.png', 'reduce.png', 'alphas.png',
          'alpha_evolution.png'} <= names
  for p in paths:
    if p.endswith('.png'):
      _check_png(p)
  with pytest.raises(UserError):
    visualize.run_cli()
  with pytest.raises(UserError):
    visualize.run_cli(genotype='DARTS_V2', workdir=search_dir)
  with pytest.raises(UserError):
    visualize.run_cli(workdir=str(tmp_path / 'missing'))


@pytest.mark.slow
def test_visualize_cli_subprocess_error():
  proc = subprocess.run(
      [sys.executable, '-m', 'darts_jax.visualize', '--genotype=NoSuchNet'],
      cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
  assert proc.returncode == 2
  assert proc.stderr.startswith('error: ') and 'NoSuchNet' in proc.stderr
  assert 'Traceback' not in proc.stderr


@pytest.mark.slow
def test_visualize_and_report_cli_subprocess(search_dir, tmp_path):
  out = tmp_path / 'cells'
  proc = subprocess.run(
      [sys.executable, '-m', 'darts_jax.visualize', '--genotype=DARTS_V2', f'--out={out}'],
      cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
  assert proc.returncode == 0, proc.stderr
  assert str(out / 'normal.png') in proc.stdout.splitlines()
  _check_png(str(out / 'normal.png'))
  run = tmp_path / 'run'
  shutil.copytree(search_dir, run)
  proc = subprocess.run(
      [sys.executable, '-m', 'darts_jax.visualize', f'--workdir={run}'],
      cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
  assert proc.returncode == 0, proc.stderr
  assert str(run / 'plots' / 'alpha_evolution.png') in proc.stdout.splitlines()
  proc = subprocess.run(
      [sys.executable, '-m', 'darts_jax.report', f'--workdir={run}'],
      cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.strip() == str(run / 'report.html')
  proc = subprocess.run(
      [sys.executable, '-m', 'darts_jax.report'],
      cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
  assert proc.returncode == 2 and proc.stderr.startswith('error: pass --workdir=')


def test_nb201_cell_dot_has_every_edge_but_none():
  (graph,) = NB201.cell_graphs(NB201.parse(NB201_ARCH))
  dot = cell_drawing.cell_to_dot(graph)
  assert dot.startswith('digraph cell {') and 'label="NAS-Bench-201 cell"' in dot
  edges = sorted(re.findall(r'"(\d)" -> "(\d)" \[label="(\w+)"', dot))
  assert edges == [('0', '1', 'nor_conv_3x3'), ('0', '2', 'skip_connect'),
                   ('1', '2', 'nor_conv_1x1'), ('1', '3', 'avg_pool_3x3'),
                   ('2', '3', 'skip_connect')]
  assert dot.count('fillcolor=') == 4  # Nodes 0 (input) .. 3 (output).
  assert '"0" [fillcolor="#b4eeb4"]' in dot and '"3" [fillcolor="#eee8aa"]' in dot
  assert 'rank=same' not in dot


def test_nb201_cell_pictures_from_string_workdir_cli_and_epoch(tmp_path, monkeypatch):
  monkeypatch.setattr(cell_drawing.shutil, 'which', lambda name: None)  # The zigzag.
  paths = cell_drawing.draw_arch(NB201_ARCH, str(tmp_path / 'a'), prefix='x_')
  assert [os.path.basename(p) for p in paths] == ['x_cell.dot', 'x_cell.png', 'x_cell.svg']
  _check_png(paths[1])
  _check_svg(paths[2])
  run = tmp_path / 'run'
  run.mkdir()
  (run / 'arch.txt').write_text(NB201_ARCH + '\n')
  paths = visualize.run_cli(genotype=str(run), out=str(tmp_path / 'cli'))
  assert {os.path.basename(p) for p in paths} == {'cell.dot', 'cell.png', 'cell.svg'}
  rng = np.random.default_rng(0)
  paths = viz_workdir.draw_epoch(str(run), 3, NB201(), NB201.parse(NB201_ARCH),
                                 {'normal': rng.normal(size=(6, 5))})
  names = {os.path.basename(p) for p in paths}
  assert {'epoch_003_cell.png', 'latest_cell.png', 'latest_cell.svg',
          'latest_alphas.png'} <= names, names


# ----------------------------------------------------------------------------
# viz/run_files.py, viz/report.py


def test_find_run_files(search_dir, pipeline_dir, tmp_path):
  rf = run_files.find_run_files(search_dir)
  assert rf.space is DARTS and rf.arch == zoo.load_genotype(search_dir)
  assert rf.final_alphas.endswith('alphas.npz') and len(rf.epoch_alphas) == EPOCHS
  assert run_files.find_run_files(pipeline_dir).search_dir == os.path.join(
      pipeline_dir, 'search')
  # No genotype.json: the last record of genotypes.jsonl.
  run = tmp_path / 'history_only'
  shutil.copytree(search_dir, run)
  for f in ('genotype.json', 'genotype.txt'):
    os.remove(run / f)
  with open(run / 'genotypes.jsonl', 'a') as f:
    f.write('not json\n{"epoch": 9, "text": "garbage"}\n')
  rf = run_files.find_run_files(str(run))
  assert rf.space is DARTS and 'epoch 4' in rf.arch_source
  records = run_files.read_jsonl(str(run / 'genotypes.jsonl'))
  assert rf.arch == run_files.arch_from_record(records[3])[1]
  assert run_files.arch_from_record({'genotype': {'nb201_arch': NB201_ARCH}}) == (
      NB201, NB201.parse(NB201_ARCH))
  with pytest.raises(UserError):
    run_files.arch_from_record({'genotype': {'what': 1}})


class _Collector(html.parser.HTMLParser):

  def __init__(self):
    super().__init__()
    self.imgs, self.refs, self.tags, self.alts = [], [], [], []

  def handle_starttag(self, tag, attrs):
    self.tags.append(tag)
    attrs = dict(attrs)
    if tag == 'img':
      self.imgs.append(attrs.get('src', ''))
      self.alts.append(attrs.get('alt', ''))
    for key in ('src', 'href'):
      if key in attrs:
        self.refs.append(attrs[key])


def test_report_pipeline(pipeline_dir, monkeypatch):
  heatmaps = []
  plot = alpha_plots.plot_alpha_heatmap
  monkeypatch.setattr(alpha_plots, 'plot_alpha_heatmap',
                      lambda *a, **k: heatmaps.append(k.get('kept')) or plot(*a, **k))
  path = report.write_report(pipeline_dir)
  assert path == os.path.join(pipeline_dir, 'report.html')
  page = open(path, encoding='utf-8').read()
  parser = _Collector()
  parser.feed(page)
  parser.close()
  assert parser.imgs, 'no images'
  assert all(r.startswith('data:') for r in parser.refs), [
      r[:40] for r in parser.refs if not r.startswith('data:')]
  assert 'script' not in parser.tags and 'link' not in parser.tags
  # Cells, curves, heat map, evolution, evaluation curves.
  assert len(parser.imgs) >= 6
  assert {'normal cell', 'reduce cell', 'alpha heat map', 'alpha evolution'} <= set(
      parser.alts)
  g = zoo.load_genotype(os.path.join(pipeline_dir, 'search'))
  text = genotype_text.genotype_to_text(g).replace("'", '&#x27;')
  assert f'<pre id="genotype">{text}</pre>' in page
  assert '97.00%' in page and '95.50%' in page and '3.30M' in page
  assert 'cifar10' in page  # The config.
  # Summary cards per cell graph; history columns per cell graph.
  graphs = DARTS.cell_graphs(g)
  assert f'skip_connect in normal cell</div><div class="v">{graphs[0].count("skip_connect")}' \
      in page
  assert 'skip_connect in reduce cell' in page and 'parameter-free ops in normal cell' in page
  for column in ('normal edges changed', 'reduce edges changed', 'skip_connect in normal',
                 'skip_connect in reduce', 'normal cell (node←input op)'):
    assert f'>{column}</th>' in page, column
  assert 'Final cells' in page and 'Cells per epoch' in page
  # The heat map outlines the final genotype's edges.
  assert heatmaps == [_kept(graphs, G.PRIMITIVES)]
  assert 'failed' not in page, page[page.find('Notes'):][:500]


def test_report_tolerates_missing_files(tmp_path):
  d = tmp_path / 'partial'
  d.mkdir()
  (d / 'metrics.jsonl').write_text('{"epoch": 1, "val_acc": 0.5}\nnot json\n')
  page = open(report.write_report(str(d)), encoding='utf-8').read()
  assert 'Notes' in page and 'malformed' in page and 'genotype.json' in page
  with pytest.raises(UserError):
    report.write_report(str(tmp_path / 'nope'))


def test_report_of_a_nas_bench_201_search(tmp_path):
  """One cell (no reduce alphas), an arch string instead of a genotype: every section
  drawn, no failure notes. The epoch files are of the old format (no edges)."""
  d = tmp_path / 'nb201'
  (d / 'alphas').mkdir(parents=True)
  rng = np.random.default_rng(0)
  history = []
  for epoch in range(1, EPOCHS + 1):
    np.savez(d / 'alphas' / f'epoch_{epoch:03d}.npz', normal=rng.normal(size=(6, 5)),
             primitives=np.array(NB201_PRIMS))
    history.append(json.dumps({'epoch': epoch, 'genotype': {'nb201_arch': NB201_ARCH}}))
  np.savez(d / 'alphas.npz', normal=rng.normal(size=(6, 5)), primitives=np.array(NB201_PRIMS),
           edges=np.array(NB201().edges(), np.int64))
  (d / 'genotypes.jsonl').write_text('\n'.join(history) + '\n')
  (d / 'arch.txt').write_text(NB201_ARCH + '\n')
  (d / 'metrics.jsonl').write_text(
      ''.join(json.dumps({'epoch': e, 'val_acc': 0.1 * e, 'train_loss': 1.0 / e}) + '\n'
              for e in range(1, EPOCHS + 1)))
  cells, names, edges = alpha_plots.load_alphas(str(d / 'alphas.npz'))
  assert list(cells) == ['normal'] and cells['normal'].shape == (6, 5) and names == NB201_PRIMS
  assert alpha_plots.edge_labels(edges) == ['1←0', '2←0', '2←1', '3←0', '3←1', '3←2']
  assert alpha_plots.load_alphas(str(d / 'alphas' / 'epoch_001.npz')).edges == edges
  page = open(report.write_report(str(d)), encoding='utf-8').read()
  parser = _Collector()
  parser.feed(page)
  assert len(parser.imgs) >= 4  # Search curves, heat map, evolution, the cell.
  assert 'alt="NAS-Bench-201 cell"' in page
  assert f'<pre id="genotype">{NB201_ARCH}</pre>' in page
  assert 'Cell per epoch' in page and 'Final cell' in page
  assert 'skip_connect in NAS-Bench-201 cell</div><div class="v">2' in page
  assert '>cell edges changed</th>' in page
  assert 'failed' not in page and 'not drawn' not in page, page[page.find('Notes'):][:500]

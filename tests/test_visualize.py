"""Tests for metrics, visualize and report on a fake (numpy-only) workdir."""

from __future__ import annotations

import glob
import html.parser
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

from darts_jax import alpha_plots
from darts_jax import cell_drawing
from darts_jax import genotypes as G
from darts_jax import metrics
from darts_jax import report
from darts_jax import visualize
from darts_jax.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS = 4


def _softmax(a):
  e = np.exp(a - a.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _entropy(a):
  p = _softmax(a)
  return float(-(p * np.log(p)).sum(-1).mean())


def make_search_dir(d: str, epochs: int = EPOCHS, seed: int = 0) -> str:
  """Writes the files a search run leaves (random alphas, no training)."""
  rng = np.random.default_rng(seed)
  os.makedirs(os.path.join(d, 'alphas'), exist_ok=True)
  with open(os.path.join(d, 'config.json'), 'w') as f:
    json.dump({'dataset': 'cifar10', 'epochs': epochs, 'batch_size': 64,
               'init_channels': 16, 'layers': 8, 'seed': seed}, f)
  prims = np.array(G.PRIMITIVES)
  n = rng.normal(size=(14, 8)) * 1e-3
  r = rng.normal(size=(14, 8)) * 1e-3
  with open(os.path.join(d, 'metrics.jsonl'), 'w') as mf, \
       open(os.path.join(d, 'genotypes.jsonl'), 'w') as gf:
    for e in range(1, epochs + 1):
      n = n + rng.normal(size=n.shape) * 0.4
      r = r + rng.normal(size=r.shape) * 0.4
      np.savez(os.path.join(d, 'alphas', f'epoch_{e:03d}.npz'), normal=n,
               reduce=r, primitives=prims)
      g = G.derive_genotype(n, r, G.PRIMITIVES)
      gf.write(json.dumps({'epoch': e, 'genotype': G.genotype_to_json(g)})
               + '\n')
      mf.write(json.dumps({
          'epoch': e, 'step': 100 * e, 'train_loss': 2.0 / e,
          'train_acc': 0.9 - 0.6 / e, 'val_loss': 2.2 / e,
          'val_acc': 0.85 - 0.6 / e, 'lr': 0.025 * (1 - e / (epochs + 1)),
          'alpha_lr': 3e-4, 'alpha_entropy_normal': _entropy(n),
          'alpha_entropy_reduce': _entropy(r), 'step_seconds': 0.05,
          'epoch_seconds': 5.0}) + '\n')
  np.savez(os.path.join(d, 'alphas.npz'), normal=n, reduce=r,
           primitives=prims)
  G.save_genotype(G.derive_genotype(n, r, G.PRIMITIVES), d)
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


@pytest.fixture(scope='module')
def search_dir(tmp_path_factory):
  return make_search_dir(str(tmp_path_factory.mktemp('search')))


@pytest.fixture(scope='module')
def pipeline_dir(tmp_path_factory):
  return make_pipeline_dir(str(tmp_path_factory.mktemp('pipeline')))


# ----------------------------------------------------------------------------
# metrics.py


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
  try:
    import tensorboardX  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
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
# cell_drawing.py, alpha_plots.py


def test_cell_to_dot_has_every_op():
  g = G.ZOO['PDARTS']
  for cell in ('normal', 'reduce'):
    dot = cell_drawing.cell_to_dot(g, cell)
    assert dot.startswith(f'digraph {cell} {{')
    for op, _ in getattr(g, cell):
      assert f'label="{op}"' in dot
    assert dot.count('->') == len(getattr(g, cell)) + len(
        getattr(g, cell + '_concat'))
    for name in ('c_{k-2}', 'c_{k-1}', 'c_{k}', '"0"', '"3"'):
      assert name in dot
  with pytest.raises(ValueError):
    cell_drawing.cell_to_dot(g, 'other')


@pytest.mark.skipif(shutil.which('dot') is None, reason='graphviz missing')
def test_draw_genotype_with_dot(tmp_path):
  paths = cell_drawing.draw_genotype(G.DARTS_V2, str(tmp_path), prefix='x_')
  names = sorted(os.path.basename(p) for p in paths)
  assert names == sorted(f'x_{c}.{e}' for c in ('normal', 'reduce')
                         for e in ('dot', 'png', 'svg'))
  for p in paths:
    if p.endswith('.png'):
      _check_png(p)
    elif p.endswith('.svg'):
      _check_svg(p)


def test_draw_genotype_without_dot(tmp_path, monkeypatch, caplog):
  monkeypatch.setattr(cell_drawing.shutil, 'which', lambda name: None)
  monkeypatch.setattr(cell_drawing, '_warned_no_dot', False)
  caplog.set_level(logging.WARNING)
  paths = cell_drawing.draw_genotype('DARTS_V1', str(tmp_path))
  cell_drawing.draw_genotype('DARTS_V1', str(tmp_path), prefix='again_',
                             formats=())  # Only .dot files: no second warning.
  for cell in ('normal', 'reduce'):
    assert (tmp_path / f'{cell}.dot').read_text().startswith('digraph')
    _check_png(str(tmp_path / f'{cell}.png'))
    _check_svg(str(tmp_path / f'{cell}.svg'))
  assert len(paths) == 6
  warnings = [r.getMessage() for r in caplog.records if 'graphviz' in
              r.getMessage()]
  assert len(warnings) == 1, warnings  # Warned once only.
  assert 'apt-get install graphviz' in warnings[0]
  assert 'brew install graphviz' in warnings[0]


def test_heatmap_and_evolution(search_dir, tmp_path):
  n, r, prims = alpha_plots.load_alphas(os.path.join(search_dir, 'alphas.npz'))
  assert prims == list(G.PRIMITIVES)
  heat = alpha_plots.plot_alpha_heatmap(n, r, prims, str(tmp_path / 'h.png'))
  _check_png(heat)
  files = sorted(glob.glob(os.path.join(search_dir, 'alphas', '*.npz')))
  bad = tmp_path / 'epoch_009.npz'
  bad.write_bytes(b'not an npz')
  evo = alpha_plots.plot_alpha_evolution(files + [str(bad)],
                                         str(tmp_path / 'evo.png'))
  _check_png(evo)
  with pytest.raises(UserError):
    alpha_plots.plot_alpha_evolution([str(bad)], str(tmp_path / 'none.png'))


def test_edge_labels():
  labels = alpha_plots.edge_labels(14)
  assert labels[0] == '2←0' and labels[2] == '3←0' and labels[-1] == '5←4'


def test_draw_epoch_writes_latest_and_never_raises(tmp_path):
  g = G.DARTS_V2
  rng = np.random.default_rng(1)
  a = rng.normal(size=(14, 8))
  paths = visualize.draw_epoch(str(tmp_path), 3, g, a, a, G.PRIMITIVES)
  plots = tmp_path / 'plots'
  for name in ('epoch_003_normal.png', 'epoch_003_reduce.png',
               'latest_normal.png', 'latest_reduce.png', 'latest_alphas.png'):
    assert str(plots / name) in paths
    _check_png(str(plots / name))
  # Bad input: logged, not raised.
  assert visualize.draw_epoch(str(tmp_path), 4, 'not a genotype') == []


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
    visualize.run_cli(workdir=str(tmp_path / 'missing'))


def test_visualize_cli_subprocess_error():
  proc = subprocess.run(
      [sys.executable, '-m', 'darts_jax.visualize', '--genotype=NoSuchNet'],
      cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
  assert proc.returncode == 2
  assert proc.stderr.startswith('error: ') and 'NoSuchNet' in proc.stderr
  assert 'Traceback' not in proc.stderr


NB201_ARCH = ('|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+'
              '|none~0|avg_pool_3x3~1|skip_connect~2|')


def test_nb201_cell_dot_has_every_edge_but_none():
  dot = cell_drawing.nb201_cell_to_dot(NB201_ARCH)
  edges = sorted(re.findall(r'"(\d)" -> "(\d)" \[label="(\w+)"', dot))
  assert edges == [('0', '1', 'nor_conv_3x3'), ('0', '2', 'skip_connect'),
                   ('1', '2', 'nor_conv_1x1'), ('1', '3', 'avg_pool_3x3'),
                   ('2', '3', 'skip_connect')]
  assert dot.count('fillcolor=') == 4  # Nodes 0 (input) .. 3 (output).


def test_nb201_cell_pictures_from_string_workdir_cli_and_epoch(tmp_path):
  paths = cell_drawing.draw_nb201_arch(NB201_ARCH, str(tmp_path / 'a'), prefix='x_')
  assert [os.path.basename(p) for p in paths] == ['x_cell.dot', 'x_cell.png', 'x_cell.svg']
  _check_png(paths[1])
  _check_svg(paths[2])
  run = tmp_path / 'run'
  run.mkdir()
  (run / 'arch.txt').write_text(NB201_ARCH + '\n')
  paths = visualize.run_cli(genotype=str(run), out=str(tmp_path / 'cli'))
  assert {os.path.basename(p) for p in paths} == {'cell.dot', 'cell.png', 'cell.svg'}
  from darts_jax import nb201  # pylint: disable=g-import-not-at-top
  paths = visualize.draw_epoch(str(run), 3, nb201.parse_arch(NB201_ARCH))
  names = {os.path.basename(p) for p in paths}
  assert {'epoch_003_cell.png', 'latest_cell.png', 'latest_cell.svg'} <= names, names


# ----------------------------------------------------------------------------
# report.py


class _Collector(html.parser.HTMLParser):

  def __init__(self):
    super().__init__()
    self.imgs, self.refs, self.tags = [], [], []

  def handle_starttag(self, tag, attrs):
    self.tags.append(tag)
    attrs = dict(attrs)
    if tag == 'img':
      self.imgs.append(attrs.get('src', ''))
    for key in ('src', 'href'):
      if key in attrs:
        self.refs.append(attrs[key])


def test_report_pipeline(pipeline_dir):
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
  g = G.load_genotype(os.path.join(pipeline_dir, 'search'))
  assert G.genotype_to_text(g).replace("'", '&#x27;') in page
  assert '97.00%' in page and '95.50%' in page and '3.30M' in page
  assert 'cifar10' in page  # The config.


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
  drawn, no failure notes."""
  prims = ['none', 'skip_connect', 'nor_conv_1x1', 'nor_conv_3x3', 'avg_pool_3x3']
  arch = '|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|skip_connect~2|'
  d = tmp_path / 'nb201'
  (d / 'alphas').mkdir(parents=True)
  rng = np.random.default_rng(0)
  history = []
  for epoch in range(1, EPOCHS + 1):
    np.savez(d / 'alphas' / f'epoch_{epoch:03d}.npz', normal=rng.normal(size=(6, 5)),
             primitives=np.array(prims))
    history.append(json.dumps({'epoch': epoch, 'genotype': {'nb201_arch': arch}}))
  np.savez(d / 'alphas.npz', normal=rng.normal(size=(6, 5)), primitives=np.array(prims))
  (d / 'genotypes.jsonl').write_text('\n'.join(history) + '\n')
  (d / 'arch.txt').write_text(arch + '\n')
  (d / 'metrics.jsonl').write_text(
      ''.join(json.dumps({'epoch': e, 'val_acc': 0.1 * e, 'train_loss': 1.0 / e}) + '\n'
              for e in range(1, EPOCHS + 1)))
  normal, reduce, names = alpha_plots.load_alphas(str(d / 'alphas.npz'))
  assert normal.shape == (6, 5) and reduce is None and names == prims
  assert alpha_plots.edge_labels(6, nb201=True) == ['1←0', '2←0', '2←1', '3←0', '3←1', '3←2']
  page = open(report.write_report(str(d)), encoding='utf-8').read()
  parser = _Collector()
  parser.feed(page)
  assert len(parser.imgs) >= 4  # Search curves, heat map, evolution, the cell.
  assert 'alt="NAS-Bench-201 cell"' in page
  assert arch in page and 'Cell per epoch' in page and 'Final cell' in page
  assert 'failed' not in page and 'not drawn' not in page, page[page.find('Notes'):][:500]

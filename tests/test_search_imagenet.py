"""PC-DARTS's search on ImageNet: the stem, the sampled splits, warm-up, alpha clipping,
and one tiny search end to end on tfds mock data."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import tensorflow_datasets as tfds

from darts_jax import data
from darts_jax.configs import benchmarks
from darts_jax.errors import UserError
from darts_jax.methods.base import Forward
from darts_jax.spaces.darts import zoo
from darts_jax.spaces.darts.genotype_text import genotype_to_text
from darts_jax.train import parts as train_parts
from darts_jax.train import search
from darts_jax.train import settings


def lr(config, epoch):
  return settings.WeightOptimizer.from_config(config.train).learning_rate(epoch)

MOCK_EXAMPLES = 20  # tiny: 16 search-train images (4 steps of 4), 4 search-val (cycled).


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp('tfds'))
  workdir = str(tmp_path_factory.mktemp('run'))
  config = benchmarks.search_imagenet('tiny')
  config.dataset.data_dir = data_dir
  with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES, data_dir=data_dir):
    result = search.search(config, workdir)
  return config, workdir, result


@pytest.mark.slow
def test_tiny_imagenet_search_end_to_end(tiny_run):
  config, workdir, result = tiny_run
  with open(os.path.join(workdir, 'metrics.jsonl'), encoding='utf-8') as f:
    records = [json.loads(line) for line in f]
  # An epoch is one pass over search-train (16 // 4 steps) though search-val holds
  # one batch: it is cycled.
  assert [(r['epoch'], r['step']) for r in records] == [(1, 4), (2, 8)]
  # Warm-up over 2 epochs: epoch 1 at half its cosine value (0.5), epoch 2 at cos(pi/2).
  assert records[0]['lr'] == pytest.approx(0.25)
  assert records[1]['lr'] == pytest.approx(0.25)
  for r in records:
    assert np.isfinite(r['train_loss']) and np.isfinite(r['search_val_loss'])
  genotype = zoo.load_genotype(workdir)
  assert genotype_to_text(genotype) == result['genotype']
  assert {op for op, _ in genotype.normal + genotype.reduce} <= (
      set(config.search_space.primitives) - {'none'})
  epochs = [np.load(os.path.join(workdir, f'alphas/epoch_00{e}.npz')) for e in (1, 2)]
  for cell in ('normal', 'reduce'):
    assert np.max(np.abs(epochs[1][cell] - epochs[0][cell])) > 1e-4, cell


def test_imagenet_stem_shapes_and_first_cell_preprocessing():
  """Three stride-2 convs: s0 at 1/4 and s1 at 1/8 of 224, so cell 0 reduces s0 by a
  FactorizedReduce (PC-DARTS's reduction_prev=True); the classifier sees 1/32."""
  config = benchmarks.search_imagenet()
  info = data.get_info('imagenet2012')
  parts = train_parts.SearchParts.from_config(config, info.num_classes)
  model = parts.model
  state = jax.eval_shape(lambda: parts.init_state(info.image_shape))
  params = jax.tree.map(lambda a: a.shape, state['params'])
  assert params['stem0_a_conv'] == (3, 3, 3, 24)
  assert params['stem0_b_conv'] == (3, 3, 24, 48)
  assert params['stem1_conv'] == (3, 3, 48, 48)
  assert 'stem_conv' not in params
  assert set(params['cell_0']['preprocess0']) == {'conv_1', 'conv_2'}  # FactorizedReduce
  assert 'conv_1' not in params['cell_1']['preprocess0']  # A 1x1 ReLUConvBN.
  x = jax.ShapeDtypeStruct((2, 224, 224, 3), jnp.float32)
  logits = jax.eval_shape(
      lambda s, x: model.apply({'params': s['params'], 'batch_stats': s['batch_stats']}, x,
                               parts.method.edge_weights(s['alphas'], Forward.VALIDATION,
                                                         None, 0), False), state, x)
  assert logits.shape == (2, 1000)


def test_cosine_lr_with_warmup_matches_the_closed_form():
  config = benchmarks.search_imagenet()
  for epoch in range(8):
    cosine = 0.5 * 0.5 * (1 + np.cos(np.pi * epoch / 50))  # lr 0.5, lr_min 0, 50 epochs.
    want = cosine * min(1.0, (epoch + 1) / 5)
    assert float(lr(config, epoch)) == pytest.approx(want, rel=1e-6), epoch
  config.train.warmup_epochs = 0
  assert float(lr(config, 0)) == pytest.approx(0.5)


def test_alpha_gradient_is_clipped_before_the_weight_decay():
  """PyTorch: clip_grad_norm_(arch params, 5), then Adam adds weight_decay * alpha."""
  config = benchmarks.search_imagenet()
  alphas = {'normal': jnp.full((2, 2), 2.0), 'reduce': jnp.zeros((2, 2))}
  grads = {'normal': jnp.full((2, 2), 30.0), 'reduce': jnp.full((2, 2), -40.0)}  # norm 100
  tx = settings.ArchOptimizer.from_config(config.arch).optimizer()
  _, opt_state = tx.update(grads, tx.init(alphas), alphas)
  mu = optax.tree_utils.tree_get(opt_state, 'mu')
  want = {'normal': 0.05 * 30.0 + 1e-3 * 2.0, 'reduce': -0.05 * 40.0}  # Clipped to norm 5.
  for cell, value in want.items():
    np.testing.assert_allclose(mu[cell], (1 - 0.5) * value, rtol=1e-5)
  config.arch.grad_clip = 0.0
  tx = settings.ArchOptimizer.from_config(config.arch).optimizer()
  _, opt_state = tx.update(grads, tx.init(alphas), alphas)
  np.testing.assert_allclose(optax.tree_utils.tree_get(opt_state, 'mu')['reduce'], -20.0)


@pytest.mark.parametrize('field, value, message', [
    ('model.stem', 'resnet', "unknown config.model.stem 'resnet'"),
    ('train.warmup_epochs', -1, 'warmup_epochs must be an integer >= 0'),
    ('arch.grad_clip', -1.0, 'config.arch.grad_clip must be >= 0'),
    ('dataset.search_subset', 1.5, r'search_subset must be in \(0, 1\]'),
])
def test_bad_settings_are_clear(field, value, message):
  config = benchmarks.search_imagenet()
  section, name = field.split('.')
  config[section][name] = value
  with pytest.raises(UserError, match=message):
    train_parts.check_config(config, data.get_info('imagenet2012'), 1, 1)


def test_imagenet_stem_is_for_the_darts_space_only():
  config = benchmarks.search_nb201('darts')
  config.model.stem = 'imagenet'
  with pytest.raises(UserError, match="NAS-Bench-201 has its own stem"):
    train_parts.check_config(config, data.get_info('cifar10'), 1, 1)

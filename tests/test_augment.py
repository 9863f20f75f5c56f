"""One real tiny augment run end to end on digits: outputs, resume, a bad genotype."""

import json
import math
import os

import jax.numpy as jnp
import numpy as np
import pytest

from darts_jax import configs
from darts_jax import data
from darts_jax.errors import UserError
from darts_jax.train import augment
from darts_jax.train import settings
from darts_jax.train import steps


def tiny_config():
  config = configs.augment_digits_config()
  config.model.layers = 3
  config.model.init_channels = 4
  config.train.epochs = 2
  config.train.batch_size = 16
  config.max_steps_per_epoch = 3
  return config


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('augment'))
  return workdir, augment.train_and_evaluate(tiny_config(), workdir)


@pytest.mark.slow
def test_outputs(run):
  workdir, result = run
  lines = [json.loads(l) for l in open(os.path.join(workdir, 'metrics.jsonl'))]
  assert [l['epoch'] for l in lines] == [1, 2]
  assert [l['step'] for l in lines] == [3, 6]
  for key in ('train_loss', 'train_acc', 'test_loss', 'test_acc', 'lr', 'epoch_seconds'):
    assert math.isfinite(lines[-1][key]), key
  with open(os.path.join(workdir, 'result.json')) as f:
    saved = json.load(f)
  assert saved == result
  assert 0.0 <= result['test_acc'] <= result['test_top5_acc'] <= 1.0
  assert lines[-1]['test_top5_acc'] == result['test_top5_acc']
  assert result['params'] > 0
  assert result['genotype'].startswith('Genotype(')
  with open(os.path.join(workdir, 'config.json')) as f:
    assert json.load(f)['mode'] == 'augment'


@pytest.mark.slow
def test_resuming_a_finished_run_does_no_steps(run, monkeypatch):
  workdir, result = run

  def no_steps(*args):
    def step(*_):
      raise AssertionError('a finished run took another step')
    return step

  monkeypatch.setattr(augment, 'make_train_step', no_steps)
  again = augment.train_and_evaluate(tiny_config(), workdir)
  assert again['test_acc'] == pytest.approx(result['test_acc'])
  assert len(open(os.path.join(workdir, 'metrics.jsonl')).readlines()) == 2


def test_unknown_genotype_is_a_user_error(tmp_path):
  config = tiny_config()
  config.genotype = 'NO_SUCH_CELL'
  with pytest.raises(UserError, match='NO_SUCH_CELL'):
    augment.train_and_evaluate(config, str(tmp_path))


def test_schedules_and_label_smoothing():
  config = tiny_config()
  config.train.lr, config.train.lr_min, config.train.epochs = 0.1, 0.0, 4
  lr = lambda config, epoch: settings.WeightOptimizer.from_config(config.train).learning_rate(
      epoch)
  assert float(lr(config, 2)) == pytest.approx(0.05)
  config.train.lr_schedule, config.train.lr_decay = 'exponential', 0.5
  assert float(lr(config, 2)) == pytest.approx(0.025)
  logits, labels = jnp.array([[2.0, 0.0]]), jnp.array([0])
  logp = np.log(np.exp([2.0, 0.0]) / np.exp([2.0, 0.0]).sum())
  assert float(steps.loss_with_smoothing(logits, labels, 0.0)) == pytest.approx(-logp[0])
  # The reference's CrossEntropyLabelSmooth: (1 - e) one-hot + e / num_classes.
  assert float(steps.loss_with_smoothing(logits, labels, 0.2)) == pytest.approx(
      -(0.9 * logp[0] + 0.1 * logp[1]))


def test_eval_step_sums_top1_and_top5_against_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(32, 10)).astype(np.float32)
  labels = rng.integers(0, 10, 32).astype(np.int32)
  mask = (np.arange(32) < 29).astype(np.float32)  # The last 3 rows are padding.

  class FixedLogits:
    def apply(self, variables, images, train):
      del variables, images, train
      return jnp.asarray(logits), None

  info = data.get_info('digits')
  eval_step = steps.make_test_step(FixedLogits(), info)
  batch = {'image': np.zeros((32,) + info.image_shape, np.uint8), 'label': labels}
  loss, top1, top5, count = (float(x) for x in eval_step(
      {'params': {}, 'batch_stats': {}}, batch, mask))
  ranks = np.argsort(-logits, axis=1)
  kept = mask > 0
  assert count == 29
  assert top1 == np.sum((ranks[:, 0] == labels)[kept])
  assert top5 == np.sum(np.any(ranks[:, :5] == labels[:, None], axis=1)[kept])
  log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  np.testing.assert_allclose(loss, -np.sum(log_probs[np.arange(32), labels][kept]), rtol=1e-5)

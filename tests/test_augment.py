"""One real tiny augment run end to end on digits: outputs, resume, a bad genotype."""

import json
import math
import os
import sys

import jax.numpy as jnp
import pytest

from darts_jax import augment
from darts_jax.errors import UserError

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'experiments'))
import augment_digits  # pylint: disable=g-import-not-at-top,wrong-import-position


def tiny_config():
  config = augment_digits.get_config()
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
  assert 0.0 <= result['test_acc'] <= 1.0
  assert result['params'] > 0
  assert result['genotype'].startswith('Genotype(')
  with open(os.path.join(workdir, 'config.json')) as f:
    assert json.load(f)['mode'] == 'augment'


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
  assert float(augment.learning_rate(config, 2)) == pytest.approx(0.05)
  config.train.lr_schedule, config.train.lr_decay = 'exponential', 0.5
  assert float(augment.learning_rate(config, 2)) == pytest.approx(0.025)
  logits, labels = jnp.array([[2.0, 0.0]]), jnp.array([0])
  plain = float(augment.loss_with_smoothing(logits, labels, 0.0))
  assert float(augment.loss_with_smoothing(logits, labels, 0.2)) > plain

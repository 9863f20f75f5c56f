"""PyTorch DARTS weights in the evaluation network, against a PyTorch network.

tests/data/torch_*_{state,outputs}.npz come from experiments/pytorch_augment_reference.py:
a PyTorch evaluation network with the DARTS code's module names, random weights and
running statistics, every DARTS op in both cell types, and its outputs on a random batch.
"""

import importlib.util
import os

from flax import traverse_util
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from darts_jax import configs
from darts_jax import data
from darts_jax import torch_weights
from darts_jax.data import augmentation
from darts_jax.errors import UserError
from darts_jax.nn import initializers
from darts_jax.runtime import parallel
from darts_jax.spaces.darts import eval_network
from darts_jax.spaces.darts import torch_layout
from darts_jax.train import augment

DATA = os.path.join(os.path.dirname(__file__), 'data')


def _fixture(network):
  outputs = dict(np.load(os.path.join(DATA, f'torch_{network}_outputs.npz')))
  model_config = ml_collections.ConfigDict(dict(
      network=network, init_channels=int(outputs['init_channels']),
      layers=int(outputs['layers']), auxiliary=bool(outputs['auxiliary']), drop_path_prob=0.0))
  state = torch_layout.read_state_dict(os.path.join(DATA, f'torch_{network}_state.npz'))
  return model_config, str(outputs['genotype']), state, outputs


@pytest.mark.parametrize('network', eval_network.NETWORKS)
def test_outputs_equal_the_pytorch_networks(network):
  """Evaluation mode (running statistics) and training mode (batch statistics, and the
  auxiliary head's logits for CIFAR)."""
  model_config, genotype, state, outputs = _fixture(network)
  x = outputs['input']
  model, variables = torch_layout.import_weights(model_config, genotype, 10, x.shape[1:],
                                                 state)
  logits, _ = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x)
  (train_logits, aux_logits), updates = jax.jit(lambda v, x: model.apply(
      v, x, train=True, mutable=['batch_stats']))(variables, x)
  scale = float(np.max(np.abs(outputs['eval_logits'])))
  np.testing.assert_allclose(logits, outputs['eval_logits'], atol=1e-5 * scale)
  np.testing.assert_allclose(train_logits, outputs['train_logits'], atol=1e-5 * scale)
  if model_config.auxiliary:
    np.testing.assert_allclose(aux_logits, outputs['train_aux_logits'], atol=1e-5)
  # The running statistics move as PyTorch's: momentum 0.1, the unbiased batch variance.
  after = dict(state, **{k.removeprefix('after_train/'): v for k, v in outputs.items()
                         if k.startswith('after_train/')})
  _, torch_after = torch_layout.import_weights(model_config, genotype, 10, x.shape[1:], after)
  flat = lambda tree: np.concatenate([np.ravel(v) for v in jax.tree.leaves(tree)])
  np.testing.assert_allclose(flat(updates['batch_stats']), flat(torch_after['batch_stats']),
                             rtol=1e-5, atol=1e-6)
  # Every tensor was used: the network holds as many weights as the state dict.
  count = lambda tree: sum(np.size(x) for x in jax.tree.leaves(tree))
  assert count(variables) == sum(np.size(v) for k, v in state.items()
                                 if not k.endswith('num_batches_tracked'))


def test_missing_extra_and_misshapen_tensors_are_clear():
  model_config, genotype, state, outputs = _fixture('imagenet')
  shape = outputs['input'].shape[1:]
  missing = {k: v for k, v in state.items() if k != 'cells.1._ops.0.conv_2.weight'}
  with pytest.raises(UserError, match=r"no 'cells.1._ops.0.conv_2.weight' \(for params/cells_1"):
    torch_layout.import_weights(model_config, genotype, 10, shape, missing)
  with pytest.raises(UserError, match='1 tensors of the weights have no place'):
    torch_layout.import_weights(model_config, genotype, 10, shape,
                                dict(state, **{'cells.9.preprocess1.op.1.weight': 0}))
  wider = model_config.copy_and_resolve_references()
  wider.init_channels = 16
  with pytest.raises(UserError, match='after the layout change: check the genotype'):
    torch_layout.import_weights(wider, genotype, 10, shape, state)


def test_auxiliary_weights_are_optional_for_a_network_without_the_head():
  model_config, genotype, state, outputs = _fixture('cifar')
  model_config.auxiliary = False
  _, variables = torch_layout.import_weights(model_config, genotype, 10,
                                             outputs['input'].shape[1:], state)
  assert 'auxiliary_head' not in variables['params']


def test_unreadable_weights_files_are_clear(tmp_path):
  with pytest.raises(UserError, match='weights file .* not found'):
    torch_layout.read_state_dict(str(tmp_path / 'nope.pt'))
  (tmp_path / 'model.pt').write_bytes(b'not a checkpoint')
  message = ('cannot read .* as a PyTorch state dict' if importlib.util.find_spec('torch')
             else 'needs PyTorch: pip install torch')
  with pytest.raises(UserError, match=message):
    torch_layout.read_state_dict(str(tmp_path / 'model.pt'))


@pytest.mark.slow
def test_evaluate_reports_the_test_split_accuracy(tmp_path):
  """The command's path end to end on tfds mock CIFAR-10: the accuracy of the converted
  network over the whole test split, and the converted variables written with --out."""
  model_config, genotype, state, outputs = _fixture('cifar')
  weights = str(tmp_path / 'weights.npz')
  np.savez(weights, **{f'module.{k}': v for k, v in state.items()})  # DataParallel names.
  config = configs.augment_config()
  config.model.update(model_config)
  config.dataset.data_dir = str(tmp_path)
  config.eval_batch_size = 8
  out = str(tmp_path / 'variables.npz')
  with tfds.testing.mock_data(num_examples=12, data_dir=str(tmp_path)):
    result = torch_weights.evaluate(config, genotype, weights, out=out)
    images, labels = data.load_source('cifar10', 'test', str(tmp_path)).get(np.arange(12))
  model, variables = torch_layout.import_weights(model_config, genotype, 10,
                                                 images.shape[1:], state)
  info = data.get_info('cifar10')
  x = augmentation.normalize(images, info.mean, info.std)
  logits, _ = model.apply(variables, x, train=False)
  assert result['test_acc'] == pytest.approx(np.mean(np.argmax(logits, -1) == labels))
  assert result['params'] == sum(np.size(v) for k, v in state.items()
                                 if k.split('.')[0] in ('stem', 'cells', 'classifier')
                                 and not k.endswith(('running_mean', 'running_var',
                                                     'num_batches_tracked')))
  with np.load(out) as written:
    np.testing.assert_array_equal(written['params/classifier/kernel'],
                                  state['classifier.weight'].T)


@pytest.mark.slow
def test_one_training_step_equals_the_pytorch_recipes():
  """augment.make_train_step against one step of the DARTS code's CIFAR training from the
  same weights (epoch 0, no augmentation): loss + 0.4 * auxiliary loss, gradient norm
  clipped at 5, SGD with momentum and weight decay on every parameter. The loss, every
  weight's change and every running statistic after the step."""
  model_config, genotype, state_dict, _ = _fixture('cifar')
  torch_step = dict(np.load(os.path.join(DATA, 'torch_cifar_step.npz')))
  config = configs.augment_config()
  config.model.update(model_config)
  config.model.auxiliary_weight = 0.4
  config.train.update(crop_padding=0, cutout=0, lr=0.025, momentum=0.9, weight_decay=3e-4,
                      grad_clip=5.0, label_smoothing=0.0, nesterov=False)
  info = data.get_info('cifar10')
  model, variables = torch_layout.import_weights(config.model, genotype, 10,
                                                 info.image_shape, state_dict)
  state = {'step': jnp.zeros((), jnp.int32), 'params': variables['params'],
           'batch_stats': variables['batch_stats'],
           'momentum': initializers.zeros_like(variables['params'])}
  # The fixture's batch keeps every ReLU input and every max pool's top-two gap well outside
  # float32 rounding, so no ReLU's gradient switches on or off and no pool's gradient moves
  # to another element between PyTorch and XLA (experiments/pytorch_augment_reference.py).
  assert torch_step['relu_input_margin'] > 16 * np.finfo(np.float32).eps
  assert torch_step['max_pool_gap_ulps'] > 16
  # Compiled as the trainer compiles it.
  new_state, step_metrics = parallel.jit(augment.make_train_step(model, config, info, 10))(
      state, {'image': torch_step['image'], 'label': torch_step['label']})
  np.testing.assert_allclose(step_metrics['train_loss'], torch_step['loss'], rtol=1e-5)

  after = dict(state_dict, **{k.removeprefix('after_step/'): v for k, v in torch_step.items()
                              if k.startswith('after_step/')})
  _, expected = torch_layout.import_weights(config.model, genotype, 10, info.image_shape,
                                            after)
  flat = lambda tree: traverse_util.flatten_dict(tree, sep='/')
  before, ours, theirs = (flat(t['params']) for t in (variables, new_state, expected))
  del before['auxiliary_head/Conv_1/kernel']  # Not in the fixture (its size).
  changes = {k: (np.asarray(ours[k]) - v, theirs[k] - v) for k, v in before.items()}
  largest = max(float(np.max(np.abs(t))) for _, t in changes.values())
  for name, (ours_change, their_change) in changes.items():
    np.testing.assert_allclose(ours_change, their_change, atol=1e-4 * largest, err_msg=name)
  np.testing.assert_allclose(
      np.concatenate([np.ravel(v) for v in flat(new_state['batch_stats']).values()]),
      np.concatenate([np.ravel(v) for v in flat(expected['batch_stats']).values()]),
      rtol=1e-5, atol=1e-6)

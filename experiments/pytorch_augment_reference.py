"""A PyTorch DARTS evaluation network with the DARTS code's state-dict layout, and the
test fixture that checks `darts_jax.torch_weights` against it.

Written for this project: the module names follow the DARTS code's `cnn/model.py` and
`cnn/operations.py` (`stem.0`, `cells.3._ops.5.op.6.weight`, `auxiliary_head.features.2`,
...), so a state dict of this network has the keys of the DARTS authors' released
weights, and the ops compute what theirs do (PyTorch's own padding, pooling and BN).

PyTorch is not a dependency of darts_jax; run this in its own environment:
  python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch==2.13.0 numpy
  /tmp/torchvenv/bin/python experiments/pytorch_augment_reference.py --out_dir=tests/data

It writes, per network (cifar: C=8, 5 cells, auxiliary head, 32x32; imagenet: C=8, 4
cells, 64x64), a random network's state dict with random running statistics
(`torch_<network>_state.npz`) and its outputs on a random batch
(`torch_<network>_outputs.npz`: input NHWC, eval-mode logits, train-mode logits and
auxiliary logits, the running statistics after the train-mode forward), and one SGD
step of the CIFAR network on a random batch (`torch_cifar_step.npz`).
"""

import argparse
import contextlib
import os

import numpy as np
import torch
from torch import nn

# Every op of the DARTS space in both cell types, reduction edges (inputs 0, 1) included.
GENOTYPE_NORMAL = [('sep_conv_3x3', 0), ('sep_conv_5x5', 1), ('dil_conv_3x3', 0),
                   ('skip_connect', 2), ('avg_pool_3x3', 1), ('max_pool_3x3', 3),
                   ('dil_conv_5x5', 2), ('conv_7x1_1x7', 4)]
GENOTYPE_REDUCE = [('skip_connect', 0), ('sep_conv_5x5', 1), ('max_pool_3x3', 0),
                   ('dil_conv_5x5', 2), ('avg_pool_3x3', 1), ('sep_conv_3x3', 3),
                   ('conv_7x1_1x7', 0), ('none', 4)]
GENOTYPE_TEXT = (f'Genotype(normal={GENOTYPE_NORMAL}, normal_concat=range(2, 6), '
                 f'reduce={GENOTYPE_REDUCE}, reduce_concat=range(2, 6))')


class ReLUConvBN(nn.Module):

  def __init__(self, c_in, c_out, kernel, stride, padding):
    super().__init__()
    self.op = nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c_out, kernel, stride, padding,
                                                 bias=False), nn.BatchNorm2d(c_out))

  def forward(self, x):
    return self.op(x)


def _dw_pw_bn(c_in, c_out, kernel, stride, dilation):
  return [nn.ReLU(),
          nn.Conv2d(c_in, c_in, kernel, stride, dilation * (kernel - 1) // 2, dilation,
                    groups=c_in, bias=False),
          nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]


class DilConv(nn.Module):

  def __init__(self, c, kernel, stride, dilation):
    super().__init__()
    self.op = nn.Sequential(*_dw_pw_bn(c, c, kernel, stride, dilation))

  def forward(self, x):
    return self.op(x)


class SepConv(nn.Module):

  def __init__(self, c, kernel, stride):
    super().__init__()
    self.op = nn.Sequential(*_dw_pw_bn(c, c, kernel, stride, 1), *_dw_pw_bn(c, c, kernel, 1, 1))

  def forward(self, x):
    return self.op(x)


class Conv7x1x7(nn.Module):

  def __init__(self, c, stride):
    super().__init__()
    self.op = nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, (1, 7), (1, stride), (0, 3), bias=False),
                            nn.Conv2d(c, c, (7, 1), (stride, 1), (3, 0), bias=False),
                            nn.BatchNorm2d(c))

  def forward(self, x):
    return self.op(x)


class FactorizedReduce(nn.Module):

  def __init__(self, c_in, c_out):
    super().__init__()
    self.relu = nn.ReLU()
    self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, 2, bias=False)
    self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, 2, bias=False)
    self.bn = nn.BatchNorm2d(c_out)

  def forward(self, x):
    x = self.relu(x)
    return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


class Zero(nn.Module):

  def __init__(self, stride):
    super().__init__()
    self.stride = stride

  def forward(self, x):
    return x[:, :, ::self.stride, ::self.stride].mul(0.)


def make_op(name, c, stride):
  if name == 'none':
    return Zero(stride)
  if name == 'avg_pool_3x3':
    return nn.AvgPool2d(3, stride, 1, count_include_pad=False)
  if name == 'max_pool_3x3':
    return nn.MaxPool2d(3, stride, 1)
  if name == 'skip_connect':
    return nn.Identity() if stride == 1 else FactorizedReduce(c, c)
  if name == 'conv_7x1_1x7':
    return Conv7x1x7(c, stride)
  kind, _, size = name.split('_')
  if kind == 'sep':
    return SepConv(c, int(size[0]), stride)
  return DilConv(c, int(size[0]), stride, 2)


class Cell(nn.Module):

  def __init__(self, c_prev_prev, c_prev, c, reduction, reduction_prev):
    super().__init__()
    self.preprocess0 = (FactorizedReduce(c_prev_prev, c) if reduction_prev
                        else ReLUConvBN(c_prev_prev, c, 1, 1, 0))
    self.preprocess1 = ReLUConvBN(c_prev, c, 1, 1, 0)
    self.pairs = GENOTYPE_REDUCE if reduction else GENOTYPE_NORMAL
    self._ops = nn.ModuleList(make_op(name, c, 2 if reduction and index < 2 else 1)
                              for name, index in self.pairs)

  def forward(self, s0, s1):
    states = [self.preprocess0(s0), self.preprocess1(s1)]
    for node in range(4):
      a, b = 2 * node, 2 * node + 1
      states.append(self._ops[a](states[self.pairs[a][1]])
                    + self._ops[b](states[self.pairs[b][1]]))
    return torch.cat(states[2:], dim=1)


class AuxiliaryHead(nn.Module):

  def __init__(self, c, num_classes, pool_stride, bn_after_768):
    super().__init__()
    layers = [nn.ReLU(), nn.AvgPool2d(5, pool_stride, 0, count_include_pad=False),
              nn.Conv2d(c, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
              nn.Conv2d(128, 768, 2, bias=False)]
    layers += [nn.BatchNorm2d(768)] if bn_after_768 else []
    self.features = nn.Sequential(*layers, nn.ReLU())
    self.classifier = nn.Linear(768, num_classes)

  def forward(self, x):
    return self.classifier(self.features(x).flatten(1))


class Network(nn.Module):
  """network 'cifar' (NetworkCIFAR) or 'imagenet' (NetworkImageNet)."""

  def __init__(self, network, c, num_classes, layers, auxiliary):
    super().__init__()
    self.network, self.auxiliary = network, auxiliary
    if network == 'cifar':
      self.stem = nn.Sequential(nn.Conv2d(3, 3 * c, 3, padding=1, bias=False),
                                nn.BatchNorm2d(3 * c))
      c_pp, c_p, reduction_prev = 3 * c, 3 * c, False
    else:
      self.stem0 = nn.Sequential(
          nn.Conv2d(3, c // 2, 3, 2, 1, bias=False), nn.BatchNorm2d(c // 2), nn.ReLU(),
          nn.Conv2d(c // 2, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c))
      self.stem1 = nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, 3, 2, 1, bias=False),
                                 nn.BatchNorm2d(c))
      c_pp, c_p, reduction_prev = c, c, True
    self.cells = nn.ModuleList()
    self.aux_index = 2 * layers // 3
    for i in range(layers):
      reduction = i in (layers // 3, 2 * layers // 3)
      c = 2 * c if reduction else c
      self.cells.append(Cell(c_pp, c_p, c, reduction, reduction_prev))
      c_pp, c_p, reduction_prev = c_p, 4 * c, reduction
      if i == self.aux_index:
        c_aux = c_p
    if auxiliary:
      self.auxiliary_head = AuxiliaryHead(c_aux, num_classes, 3 if network == 'cifar' else 2,
                                          network == 'cifar')
    self.classifier = nn.Linear(c_p, num_classes)

  def forward(self, x):
    if self.network == 'cifar':
      s0 = s1 = self.stem(x)
    else:
      s0 = self.stem0(x)
      s1 = self.stem1(s0)
    aux = None
    for i, cell in enumerate(self.cells):
      s0, s1 = s1, cell(s0, s1)
      if i == self.aux_index and self.auxiliary and self.training:
        aux = self.auxiliary_head(s1)
    return self.classifier(s1.mean((2, 3))), aux


def write_fixture(network, c, layers, auxiliary, size, out_dir, seed=0):
  torch.manual_seed(seed)
  model = Network(network, c, 10, layers, auxiliary)
  with torch.no_grad():  # Running statistics and affine BN weights away from their init.
    for module in model.modules():
      if isinstance(module, nn.BatchNorm2d):
        module.running_mean.uniform_(-0.5, 0.5)
        module.running_var.uniform_(0.5, 2.0)
        module.weight.uniform_(0.5, 1.5)
        module.bias.uniform_(-0.2, 0.2)
  x = torch.randn(4, 3, size, size)
  # Before the train-mode forward, which moves the running statistics.
  state = {k: v.numpy().copy() for k, v in model.state_dict().items()}
  model.eval()
  with torch.no_grad():
    eval_logits, _ = model(x)
  model.train()
  with torch.no_grad():
    train_logits, train_aux = model(x)
  np.savez_compressed(os.path.join(out_dir, f'torch_{network}_state.npz'), **state)
  outputs = {'input': x.permute(0, 2, 3, 1).numpy(), 'eval_logits': eval_logits.numpy(),
             'train_logits': train_logits.numpy(), 'genotype': np.array(GENOTYPE_TEXT),
             'init_channels': c, 'layers': layers, 'auxiliary': auxiliary}
  # The running statistics after the train-mode forward (momentum 0.1, unbiased variance).
  outputs.update({f'after_train/{k}': v.numpy() for k, v in model.state_dict().items()
                  if k.endswith(('running_mean', 'running_var'))})
  if train_aux is not None:
    outputs['train_aux_logits'] = train_aux.numpy()
  np.savez_compressed(os.path.join(out_dir, f'torch_{network}_outputs.npz'), **outputs)
  print(network, sum(v.size for v in state.values()), 'state values')


CIFAR_MEAN = (0.49139968, 0.48215827, 0.44653124)  # The DARTS code's `cnn/utils.py`.
CIFAR_STD = (0.24703233, 0.24348505, 0.26158768)
# Left out of the step fixture: 1.5 MB of the 2 MB (the auxiliary head's 2x2 conv to 768).
STEP_FIXTURE_SKIPS = ('auxiliary_head.features.5.weight',)


# The step's batch: of seeds 1-60, the one furthest from the network's two kinks, in
# float32 steps (ulps): the smallest |ReLU input| in units of ulp(1) (3.4 million inputs;
# their terms are of order 1) and the smallest gap between the largest and second-largest
# value of a max pool's window in units of the largest's ulp (the gradient goes to the
# largest). Seed 17: 28 ulp(1) (3.4e-6) and 279 ulps; most seeds are under 10 on one of
# the two. At a ReLU input or a pool gap within float32 rounding of 0 the gradient jumps,
# and two correct float32 programs (PyTorch's, XLA's) can land on either side: seed 1's
# batch had a ReLU input at 3.9e-7 whose side changed the conv_7x1_1x7 gradients by 0.6%
# (docs/history.md, "A kink, not a compiler bug").
STEP_FIXTURE_SEED = 17


def _window_gap_ulps(pool, x):
  """The smallest gap (largest - second largest) of `pool`'s windows over x, in ulps of
  the largest."""
  pad = pool.padding
  windows = nn.functional.unfold(
      nn.functional.pad(x, (pad, pad, pad, pad), value=-float('inf')), pool.kernel_size,
      stride=pool.stride)
  top2 = windows.view(x.shape[0], x.shape[1], -1, windows.shape[-1]).topk(2, dim=2).values
  ulp = torch.finfo(x.dtype).eps * top2[:, :, 0].abs()
  return float(((top2[:, :, 0] - top2[:, :, 1]) / ulp).min())


@contextlib.contextmanager
def kink_margins(model):
  """While inside, collects each ReLU call's smallest |input| ('relu') and each max pool
  call's smallest window gap in ulps ('max_pool')."""
  margins = {'relu': [], 'max_pool': []}

  def relu_hook(_, inputs):
    margins['relu'].append(float(inputs[0].detach().abs().min()))

  def pool_hook(pool, inputs):
    margins['max_pool'].append(_window_gap_ulps(pool, inputs[0].detach()))

  hooks = [m.register_forward_pre_hook(relu_hook if isinstance(m, nn.ReLU) else pool_hook)
           for m in model.modules() if isinstance(m, (nn.ReLU, nn.MaxPool2d))]
  try:
    yield margins
  finally:
    for hook in hooks:
      hook.remove()


def write_step_fixture(out_dir, seed=STEP_FIXTURE_SEED):
  """One training step of the DARTS code's CIFAR recipe (`cnn/train.py` at epoch 0: drop
  path 0, no augmentation here): loss + 0.4 * auxiliary loss, gradient norm clipped at 5,
  SGD lr 0.025, momentum 0.9, weight decay 3e-4 on every parameter."""
  torch.manual_seed(seed)
  model = Network('cifar', 8, 10, 5, True)
  start = np.load(os.path.join(out_dir, 'torch_cifar_state.npz'))
  model.load_state_dict({k: torch.from_numpy(start[k]) for k in start.files})
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
  labels = rng.integers(0, 10, 8).astype(np.int64)
  x = (torch.from_numpy(images).float() / 255 - torch.tensor(CIFAR_MEAN)) / torch.tensor(CIFAR_STD)
  x = x.permute(0, 3, 1, 2).contiguous()
  y = torch.from_numpy(labels)
  optimizer = torch.optim.SGD(model.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
  model.train()
  with kink_margins(model) as margins:
    logits, aux = model(x)
  relu_margin, pool_gap = min(margins['relu']), min(margins['max_pool'])
  loss = nn.functional.cross_entropy(logits, y) + 0.4 * nn.functional.cross_entropy(aux, y)
  loss.backward()
  nn.utils.clip_grad_norm_(model.parameters(), 5.0)
  optimizer.step()
  after = {f'after_step/{k}': v.numpy() for k, v in model.state_dict().items()
           if k not in STEP_FIXTURE_SKIPS and not k.endswith('num_batches_tracked')}
  np.savez_compressed(os.path.join(out_dir, 'torch_cifar_step.npz'), image=images,
                      label=labels.astype(np.int32), loss=loss.item(),
                      relu_input_margin=relu_margin, max_pool_gap_ulps=pool_gap,
                      **after)
  print('step: loss', loss.item(), 'smallest |ReLU input|', relu_margin,
        'smallest max-pool gap (ulps)', pool_gap)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--out_dir', default='tests/data')
  args = parser.parse_args()
  os.makedirs(args.out_dir, exist_ok=True)
  write_fixture('cifar', 8, 5, True, 32, args.out_dir)
  write_fixture('imagenet', 8, 4, False, 64, args.out_dir)
  write_step_fixture(args.out_dir)


if __name__ == '__main__':
  main()

"""The PyTorch reference step that issue #8 compares darts_jax against, timed on this machine.

A plain PyTorch DARTS search network and bilevel step, written for this benchmark in the
style of the original DARTS code and pt.darts (NCHW, eager mode, one module per edge and
op, `sum(w * op(x))` per edge): 8 cells (reductions at 1/3 and 2/3), C=16, 4 nodes, the 8
DARTS ops, BN without affine in the ops, alphas kept apart from the weights. One step is
what a DARTS search iteration does:
  first:       alpha step (Adam 3e-4, betas (0.5, 0.999), wd 1e-3) on a validation batch,
               then the weight step (SGD 0.025, momentum 0.9, wd 3e-4, clip 5) on a train batch;
  second_fd:   the alpha step with DARTS' unrolled hypergradient, the Hessian-vector
               product as DARTS' central finite difference (eps = 0.01 / ||v||), then the
               weight step;
  second_exact: the same hypergradient with the Hessian-vector product by double
               backward (`torch.autograd.grad(..., create_graph=True)`).

PyTorch is not a dependency of darts_jax; run this in its own environment:
  python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch==2.13.0 numpy
  /tmp/torchvenv/bin/python experiments/pytorch_reference.py --order=first --batch=64

It prints one JSON line (median step seconds over --steps after one warm-up step, CPU
seconds, peak RSS, the weight count) to compare with `experiments/benchmark.py`'s
`cifar_first_b64` / `cifar_second_exact_b64` records; `--cases=speed` there reads these
lines from --pytorch_records when given.
"""

import argparse
import json
import os
import resource
import statistics
import time

import torch
from torch import nn
import torch.nn.functional as F

PRIMITIVES = ('none', 'max_pool_3x3', 'avg_pool_3x3', 'skip_connect', 'sep_conv_3x3',
              'sep_conv_5x5', 'dil_conv_3x3', 'dil_conv_5x5')


def relu_dw_pw_bn(c_in, c_out, kernel, stride, dilation):
  return nn.Sequential(
      nn.ReLU(inplace=False),
      nn.Conv2d(c_in, c_in, kernel, stride, dilation * (kernel - 1) // 2, dilation,
                groups=c_in, bias=False),
      nn.Conv2d(c_in, c_out, 1, bias=False),
      nn.BatchNorm2d(c_out, affine=False))


class FactorizedReduce(nn.Module):
  """ReLU, two stride-2 1x1 convs (the second shifted by one pixel), concatenated, BN."""

  def __init__(self, c_in, c_out, affine=False):
    super().__init__()
    self.conv_a = nn.Conv2d(c_in, c_out // 2, 1, 2, bias=False)
    self.conv_b = nn.Conv2d(c_in, c_out - c_out // 2, 1, 2, bias=False)
    self.bn = nn.BatchNorm2d(c_out, affine=affine)

  def forward(self, x):
    x = F.relu(x)
    return self.bn(torch.cat([self.conv_a(x), self.conv_b(x[:, :, 1:, 1:])], dim=1))


class Zero(nn.Module):

  def __init__(self, stride):
    super().__init__()
    self.stride = stride

  def forward(self, x):
    return x[:, :, ::self.stride, ::self.stride] * 0.


def make_op(name, c, stride):
  if name == 'none':
    return Zero(stride)
  if name == 'max_pool_3x3':
    return nn.Sequential(nn.MaxPool2d(3, stride, 1), nn.BatchNorm2d(c, affine=False))
  if name == 'avg_pool_3x3':
    return nn.Sequential(nn.AvgPool2d(3, stride, 1, count_include_pad=False),
                         nn.BatchNorm2d(c, affine=False))
  if name == 'skip_connect':
    return nn.Identity() if stride == 1 else FactorizedReduce(c, c)
  kind, _, size = name.split('_')
  kernel = int(size[0])
  if kind == 'sep':
    return nn.Sequential(relu_dw_pw_bn(c, c, kernel, stride, 1),
                         relu_dw_pw_bn(c, c, kernel, 1, 1))
  return relu_dw_pw_bn(c, c, kernel, stride, 2)


class MixedOp(nn.Module):

  def __init__(self, c, stride):
    super().__init__()
    self.ops = nn.ModuleList(make_op(name, c, stride) for name in PRIMITIVES)

  def forward(self, x, weights):
    return sum(w * op(x) for w, op in zip(weights, self.ops))


class SearchCell(nn.Module):

  def __init__(self, steps, c_prev_prev, c_prev, c, reduction, reduction_prev):
    super().__init__()
    self.steps = steps
    self.reduction = reduction
    self.pre0 = (FactorizedReduce(c_prev_prev, c) if reduction_prev else
                 nn.Sequential(nn.ReLU(), nn.Conv2d(c_prev_prev, c, 1, bias=False),
                               nn.BatchNorm2d(c, affine=False)))
    self.pre1 = nn.Sequential(nn.ReLU(), nn.Conv2d(c_prev, c, 1, bias=False),
                              nn.BatchNorm2d(c, affine=False))
    self.edges = nn.ModuleList(
        MixedOp(c, 2 if reduction and source < 2 else 1)
        for node in range(steps) for source in range(2 + node))

  def forward(self, s0, s1, weights):
    states = [self.pre0(s0), self.pre1(s1)]
    row = 0
    for node in range(self.steps):
      states.append(sum(self.edges[row + j](h, weights[row + j]) for j, h in enumerate(states)))
      row += len(states) - 1
    return torch.cat(states[-self.steps:], dim=1)


class SearchNetwork(nn.Module):

  def __init__(self, channels=16, num_classes=10, layers=8, steps=4, stem_multiplier=3):
    super().__init__()
    c = stem_multiplier * channels
    self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
    c_prev_prev, c_prev, c = c, c, channels
    cells, reduction_prev = [], False
    for i in range(layers):
      reduction = i in (layers // 3, 2 * layers // 3)
      if reduction:
        c *= 2
      cells.append(SearchCell(steps, c_prev_prev, c_prev, c, reduction, reduction_prev))
      reduction_prev = reduction
      c_prev_prev, c_prev = c_prev, steps * c
    self.cells = nn.ModuleList(cells)
    self.classifier = nn.Linear(c_prev, num_classes)
    num_edges = sum(2 + i for i in range(steps))
    self.alpha_normal = nn.Parameter(1e-3 * torch.randn(num_edges, len(PRIMITIVES)))
    self.alpha_reduce = nn.Parameter(1e-3 * torch.randn(num_edges, len(PRIMITIVES)))

  def weights(self):
    return [p for name, p in self.named_parameters() if not name.startswith('alpha')]

  def alphas(self):
    return [self.alpha_normal, self.alpha_reduce]

  def forward(self, x):
    s0 = s1 = self.stem(x)
    normal = F.softmax(self.alpha_normal, dim=-1)
    reduce = F.softmax(self.alpha_reduce, dim=-1)
    for cell in self.cells:
      s0, s1 = s1, cell(s0, s1, reduce if cell.reduction else normal)
    return self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1))


def loss_fn(net, batch):
  images, labels = batch
  return F.cross_entropy(net(images), labels)


class BilevelStep:
  """One DARTS search iteration: the alpha step, then the weight step."""

  def __init__(self, net, order, w_lr=0.025, w_momentum=0.9, w_decay=3e-4):
    self.net, self.order = net, order
    self.w_lr, self.w_momentum, self.w_decay = w_lr, w_momentum, w_decay
    self.w_opt = torch.optim.SGD(net.weights(), w_lr, momentum=w_momentum, weight_decay=w_decay)
    self.a_opt = torch.optim.Adam(net.alphas(), 3e-4, betas=(0.5, 0.999), weight_decay=1e-3)

  def _momentum(self, p):
    state = self.w_opt.state.get(p, {})
    buf = state.get('momentum_buffer')
    return torch.zeros_like(p) if buf is None else buf * self.w_momentum

  def _train_alpha_grads(self, batch):
    return torch.autograd.grad(loss_fn(self.net, batch), self.net.alphas())

  def _unrolled_alpha_grads(self, train, val):
    net, weights, alphas = self.net, self.net.weights(), self.net.alphas()
    grads = torch.autograd.grad(loss_fn(net, train), weights)
    saved = [w.detach().clone() for w in weights]
    with torch.no_grad():  # The virtual step w' = w - xi * (momentum + g + wd * w).
      for w, g in zip(weights, grads):
        w.sub_(self.w_lr * (self._momentum(w) + g + self.w_decay * w))
    val_grads = torch.autograd.grad(loss_fn(net, val), weights + alphas)
    v, direct = val_grads[:len(weights)], val_grads[len(weights):]
    with torch.no_grad():
      for w, s in zip(weights, saved):
        w.copy_(s)
    if self.order == 'second_exact':
      g_w = torch.autograd.grad(loss_fn(net, train), weights, create_graph=True)
      hvp = torch.autograd.grad(g_w, alphas, grad_outputs=v)
    else:
      eps = 0.01 / torch.cat([x.flatten() for x in v]).norm()
      plus_minus = []
      for sign in (1., -2.):
        with torch.no_grad():
          for w, d in zip(weights, v):
            w.add_(sign * eps * d)
        plus_minus.append(self._train_alpha_grads(train))
      with torch.no_grad():
        for w, s in zip(weights, saved):
          w.copy_(s)
      hvp = [(p - n) / (2. * eps) for p, n in zip(*plus_minus)]
    return [d - self.w_lr * h for d, h in zip(direct, hvp)]

  def __call__(self, train, val):
    if self.order == 'first':
      alpha_grads = torch.autograd.grad(loss_fn(self.net, val), self.net.alphas())
    else:
      alpha_grads = self._unrolled_alpha_grads(train, val)
    for a, g in zip(self.net.alphas(), alpha_grads):
      a.grad = g
    self.a_opt.step()
    self.w_opt.zero_grad(set_to_none=True)
    loss = loss_fn(self.net, train)
    loss.backward()
    nn.utils.clip_grad_norm_(self.net.weights(), 5.)
    self.w_opt.step()
    return loss.item()


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--order', default='first', choices=('first', 'second_fd', 'second_exact'))
  parser.add_argument('--batch', type=int, default=64)
  parser.add_argument('--layers', type=int, default=8)
  parser.add_argument('--channels', type=int, default=16)
  parser.add_argument('--steps', type=int, default=3, help='timed steps after one warm-up step')
  parser.add_argument('--threads', type=int, default=os.cpu_count())
  args = parser.parse_args()
  torch.manual_seed(0)
  torch.set_num_threads(args.threads)
  net = SearchNetwork(args.channels, layers=args.layers)
  step = BilevelStep(net, args.order)

  def batch():
    return (torch.randn(args.batch, 3, 32, 32), torch.randint(0, 10, (args.batch,)))

  losses, wall, cpu = [], [], []
  for i in range(args.steps + 1):
    train, val = batch(), batch()
    t0, c0 = time.perf_counter(), time.process_time()
    losses.append(step(train, val))
    if i:  # The first step is the warm-up (allocator, oneDNN primitive caches).
      wall.append(time.perf_counter() - t0)
      cpu.append(time.process_time() - c0)
  print(json.dumps({
      'case': f'pytorch_{args.order}_b{args.batch}', 'torch': torch.__version__,
      'threads': torch.get_num_threads(), 'layers': args.layers, 'init_channels': args.channels,
      'batch': args.batch, 'order': args.order,
      'num_weights': sum(p.numel() for p in net.weights()),
      'step_seconds': round(statistics.median(wall), 3),
      'step_seconds_all': [round(t, 3) for t in wall],
      'step_cpu_seconds': round(statistics.median(cpu), 3),
      'peak_rss_gb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
      'loss_finite': all(l == l and abs(l) != float('inf') for l in losses),
      'load_avg_1min': round(os.getloadavg()[0], 2)}))


if __name__ == '__main__':
  main()

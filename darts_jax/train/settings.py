"""The trainers' settings as typed values, read from the config once at the start of a run.

The steps (`train.steps`) take these, never the config: a step closes over numbers.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import optax

from darts_jax.errors import UserError
from darts_jax.optim import architect
from darts_jax.optim import sgd

COMPUTE_DTYPES = ('float32', 'bfloat16')
LR_SCHEDULES = ('cosine', 'exponential')
UPDATE_ORDERS = ('alphas_first', 'weights_first')


@dataclasses.dataclass(frozen=True)
class WeightOptimizer:
  """config.train's SGD and its per-epoch learning-rate schedule."""
  lr: float
  lr_min: float
  epochs: int
  momentum: float
  weight_decay: float
  grad_clip: float
  nesterov: bool = False
  warmup_epochs: int = 0
  schedule: str = 'cosine'
  lr_decay: float = 0.97

  @classmethod
  def from_config(cls, train) -> WeightOptimizer:
    return cls(lr=train.lr, lr_min=train.get('lr_min', 0.0), epochs=train.epochs,
               momentum=train.momentum, weight_decay=train.weight_decay,
               grad_clip=train.grad_clip, nesterov=bool(train.get('nesterov', False)),
               warmup_epochs=train.get('warmup_epochs', 0),
               schedule=train.get('lr_schedule', 'cosine'),
               lr_decay=train.get('lr_decay', 0.97))

  def learning_rate(self, epoch):
    if self.schedule == 'exponential':
      return sgd.exponential_lr(epoch, self.lr, self.lr_decay)
    return sgd.cosine_lr(epoch, self.lr, self.lr_min, self.epochs, self.warmup_epochs)

  def update(self, params, grads, buffer, lr):
    return sgd.sgd_momentum_update(params, grads, buffer, lr, self.momentum,
                                   self.weight_decay, self.grad_clip, self.nesterov)


@dataclasses.dataclass(frozen=True)
class ArchOptimizer:
  """config.arch: the alpha gradient's order, the alphas' Adam, the update order.

  share_train_grad: one train gradient for the virtual and the weight step. DARTS steps
  the weights with grad_w L_train(w, a_new), after the alpha update, and so computes
  grad_w L_train twice per second-order step: at a for the virtual step w', at a_new for
  the weights. Shared, both use the one at a, so the weights move without the alpha
  step's change (a "simultaneous" update) and, with xi = lr, w' is the actual next
  weights before gradient clipping.
  """
  order: str = 'first'
  lr: float = 3e-4
  beta1: float = 0.5
  beta2: float = 0.999
  weight_decay: float = 1e-3
  grad_clip: float = 0.0
  share_train_grad: bool = False
  update_order: str = 'alphas_first'

  @classmethod
  def from_config(cls, arch) -> ArchOptimizer:
    return cls(order=arch.order, lr=arch.lr, beta1=arch.beta1, beta2=arch.beta2,
               weight_decay=arch.weight_decay, grad_clip=arch.get('grad_clip', 0.0),
               share_train_grad=bool(arch.get('share_train_grad', False)),
               update_order=arch.get('update_order', 'alphas_first'))

  @property
  def weights_first(self) -> bool:
    return self.update_order == 'weights_first'

  def optimizer(self) -> optax.GradientTransformation:
    return sgd.alpha_optimizer(self.lr, self.beta1, self.beta2, self.weight_decay,
                               self.grad_clip)

  def check(self, deterministic_forward: bool) -> None:
    if self.order not in architect.ORDERS:
      raise UserError(f'unknown config.arch.order {self.order!r}; use one of '
                      f'{architect.ORDERS}')
    if self.grad_clip < 0:
      raise UserError(f'config.arch.grad_clip must be >= 0 (0: no clipping), got '
                      f'{self.grad_clip}')
    if self.update_order not in UPDATE_ORDERS:
      raise UserError(f'unknown config.arch.update_order {self.update_order!r}; use one of '
                      f'{", ".join(UPDATE_ORDERS)}')
    if self.weights_first and self.order != 'first':
      raise UserError("config.arch.update_order='weights_first' needs config.arch.order="
                      "'first' (the unrolled step is defined at the weights before their "
                      "update); set it, or use update_order='alphas_first'")
    if self.share_train_grad and self.order == 'first':
      raise UserError('config.arch.share_train_grad saves a pass only in second order; set '
                      'config.arch.order to second_exact or second_fd, or drop it')
    if self.share_train_grad and not deterministic_forward:
      raise UserError('config.arch.share_train_grad needs one edge-weight sample for both '
                      'steps: use a method whose forwards do not sample (darts, pc_darts)')


def compute_dtype(model) -> jnp.dtype:
  """config.model.compute_dtype: the dtype of the forward and backward passes."""
  name = model.get('compute_dtype', 'float32')
  if name not in COMPUTE_DTYPES:
    raise UserError(f'unknown config.model.compute_dtype {name!r}; use one of {COMPUTE_DTYPES}')
  return jnp.dtype(name)


AUTO_BATCH = 'auto'
# The batch per-op latencies are timed at (config.budget.kind='latency') when the
# training batch is config.train.batch_size='auto', whose value is known only later.
LATENCY_BATCH_FOR_AUTO = 64


def batch_size(train) -> int | None:
  """config.train.batch_size: a positive integer, or None for 'auto' (the largest batch
  whose compiled step fits the device's memory)."""
  value = train.batch_size
  if value == AUTO_BATCH:
    return None
  if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
    raise UserError(f"config.train.batch_size must be a positive integer or '{AUTO_BATCH}', "
                    f'got {value!r}')
  return value

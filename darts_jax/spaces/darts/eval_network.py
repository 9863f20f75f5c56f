"""The evaluation ("augment") network: a derived genotype trained from scratch.

Follows the DARTS reference `cnn/model.py`: `NetworkCIFAR` (3x3 stem to 3C
channels, `layers` cells, reduction cells at layers//3 and 2*layers//3) and
`NetworkImageNet` (the mobile setting: three stride-2 3x3 convs in two stems).
Channels double at each reduction cell; the optional auxiliary head reads the
output of cell 2*layers//3; drop path zeroes whole non-identity op outputs per
example.

Usage:
  model = build_augment_model(config.model, genotype, num_classes=10)
  variables = model.init(key, images, train=False)  # includes the aux head
  (logits, aux), state = model.apply(
      variables, images, train=True, drop_path_prob=p,
      rngs={'dropout': key}, mutable=['batch_stats'])
  logits, aux = model.apply(variables, images)  # eval; aux is None

`drop_path_prob` may be a traced scalar, so a linear ramp over epochs does not
recompile; a Python 0 or None switches drop path off (no 'dropout' RNG needed).
"""

from __future__ import annotations

import numbers
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from darts_jax.errors import UserError
from darts_jax.nn import initializers
from darts_jax.spaces.darts import eval_ops
from darts_jax.spaces.darts import genotype as genotype_lib
from darts_jax.spaces.darts import zoo
from darts_jax.spaces.darts.eval_ops import Conv, FactorizedReduce, Identity, ReLUConvBN
from darts_jax.spaces.darts.genotype import Genotype

NETWORKS = ('cifar', 'imagenet')


def check_genotype(genotype: Any) -> Genotype:
  """Validates a genotype (also its op names against AUGMENT_OPS).

  Returns it normalized to tuples; raises GenotypeError (a UserError) naming
  the bad field or op.
  """
  return genotype_lib.validate_genotype(
      genotype, known_ops=tuple(eval_ops.AUGMENT_OPS))


def reduction_layers(layers: int) -> tuple[int, int]:
  """Indices of the two reduction cells (equal when layers < 3)."""
  return layers // 3, 2 * layers // 3


def _drop_path_active(train: bool, drop_path_prob: Any) -> bool:
  if not train or drop_path_prob is None:
    return False
  if isinstance(drop_path_prob, (int, float)):
    return drop_path_prob > 0
  return True  # A traced or array value: always apply (p = 0 keeps all).


def drop_path(x: jax.Array, drop_prob: Any, rng: jax.Array) -> jax.Array:
  """Zeroes each example of `x` with probability `drop_prob`, scales the kept
  ones by 1 / (1 - drop_prob)."""
  keep_prob = 1.0 - jnp.asarray(drop_prob, jnp.float32)
  mask = jax.random.bernoulli(rng, keep_prob, (x.shape[0],) + (1,) * (x.ndim - 1))
  return jnp.where(mask, x / keep_prob.astype(x.dtype), jnp.zeros((), x.dtype))


class Cell(nn.Module):
  """An evaluation cell: preprocess both inputs to `features` channels, then
  each node sums two ops on earlier states; output concatenates `concat`."""
  genotype: Genotype
  features: int
  reduction: bool
  reduction_prev: bool

  @property
  def _pairs(self) -> tuple[tuple[str, int], ...]:
    return self.genotype.reduce if self.reduction else self.genotype.normal

  @property
  def _concat(self) -> tuple[int, ...]:
    g = self.genotype
    return g.reduce_concat if self.reduction else g.normal_concat

  def setup(self):
    c = self.features
    self.preprocess0 = (FactorizedReduce(c) if self.reduction_prev
                        else ReLUConvBN(c, 1, 1))
    self.preprocess1 = ReLUConvBN(c, 1, 1)
    self.ops = [
        eval_ops.get_augment_op(name)(
            c, 2 if self.reduction and index < 2 else 1, True)
        for name, index in self._pairs]

  def __call__(self, s0: jax.Array, s1: jax.Array, train: bool = False,
               drop_path_prob: Any = None) -> jax.Array:
    states = [self.preprocess0(s0, train), self.preprocess1(s1, train)]
    drop = _drop_path_active(train, drop_path_prob)
    pairs = self._pairs
    for node in range(len(pairs) // 2):
      total = None
      for j in (2 * node, 2 * node + 1):
        op = self.ops[j]
        h = op(states[pairs[j][1]], train)
        if drop and not isinstance(op, Identity):
          h = drop_path(h, drop_path_prob, self.make_rng('dropout'))
        total = h if total is None else total + h
      states.append(total)
    return jnp.concatenate([states[i] for i in self._concat], axis=-1)


class AuxiliaryHead(nn.Module):
  """ReLU, 5x5 average pool (no padding), 1x1 conv 128, BN, ReLU, 2x2 conv
  768, [BN,] ReLU, linear. CIFAR: pool stride 3 on 8x8; ImageNet: stride 2 on
  7x7 and no BN after the 768 conv (the reference comments it out to match the
  paper's experiments). Both reduce to 1x1 at the standard image sizes."""
  num_classes: int
  pool_stride: int = 3
  bn_after_768: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    h, w = x.shape[1:3]
    pooled = [(d - 5) // self.pool_stride + 1 for d in (h, w)]
    if min(pooled) < 2:
      need = 5 + self.pool_stride
      raise UserError(
          f'the auxiliary head needs at least {need}x{need} features at cell '
          f'2*layers//3, got {h}x{w}; use the standard image size (32 for '
          'CIFAR, 224 for ImageNet) or set model.auxiliary=False')
    x = nn.avg_pool(nn.relu(x), (5, 5), (self.pool_stride,) * 2, 'VALID')
    x = nn.relu(eval_ops.batch_norm(train)(Conv(128, 1)(x)))
    x = Conv(768, 2, padding='valid')(x)
    if self.bn_after_768:
      x = eval_ops.batch_norm(train)(x)
    x = nn.relu(x).reshape(x.shape[0], -1)
    return _classifier(self.num_classes, x.shape[-1])(x)


def _classifier(num_classes: int, fan_in: int, name: str | None = None
                ) -> nn.Dense:
  return nn.Dense(num_classes, kernel_init=initializers.torch_default,
                  bias_init=initializers.torch_bias(fan_in), name=name)


def _cells_and_heads(module: nn.Module, s0: jax.Array, s1: jax.Array,
                     reduction_prev: bool, aux_head: AuxiliaryHead,
                     train: bool, drop_path_prob: Any
                     ) -> tuple[jax.Array, jax.Array | None]:
  """The shared body; call from a compact method of `module`."""
  layers = module.layers
  reductions = reduction_layers(layers)
  aux_index = 2 * layers // 3
  c = module.init_channels
  aux_logits = None
  for i in range(layers):
    reduction = i in reductions
    if reduction:
      c *= 2
    cell = Cell(module.genotype, c, reduction, reduction_prev, name=f'cells_{i}')
    s0, s1 = s1, cell(s0, s1, train, drop_path_prob)
    reduction_prev = reduction
    # Init always builds the head so that its params exist for training.
    if i == aux_index and module.auxiliary and (
        train or module.is_initializing()):
      out = aux_head(s1, train)
      aux_logits = out if train else None
  pooled = jnp.mean(s1, axis=(1, 2))
  logits = _classifier(module.num_classes, pooled.shape[-1],
                       name='classifier')(pooled)
  return logits, aux_logits


class _NetworkBase(nn.Module):
  """Fields and checks shared by both networks."""
  genotype: Genotype
  init_channels: int
  num_classes: int
  layers: int
  auxiliary: bool = False

  def __post_init__(self):
    # Validate up front so a bad op fails at construction, not deep in init.
    object.__setattr__(self, 'genotype', check_genotype(self.genotype))
    for field in ('init_channels', 'num_classes', 'layers'):
      value = getattr(self, field)
      if (not isinstance(value, numbers.Integral) or isinstance(value, bool)
          or value < 1):
        raise UserError(f'{field} must be a positive integer, got {value!r}')
    super().__post_init__()

  def _check_drop_path(self, train: bool, drop_path_prob: Any) -> None:
    if (_drop_path_active(train, drop_path_prob)
        and not self.has_rng('dropout')):
      raise UserError(
          "drop path needs an RNG: pass rngs={'dropout': key} to apply, or "
          'drop_path_prob=0')


class NetworkCIFAR(_NetworkBase):
  """DARTS evaluation network for 32x32 images (CIFAR)."""
  stem_multiplier: int = 3

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False,
               drop_path_prob: Any = None
               ) -> tuple[jax.Array, jax.Array | None]:
    """Returns (logits, aux_logits); aux_logits is None unless training
    with an auxiliary head."""
    self._check_drop_path(train, drop_path_prob)
    s = Conv(self.stem_multiplier * self.init_channels, 3, name='stem_conv')(x)
    s = eval_ops.batch_norm(train, name='stem_bn')(s)
    aux = AuxiliaryHead(self.num_classes, pool_stride=3, bn_after_768=True,
                        name='auxiliary_head')
    return _cells_and_heads(self, s, s, False, aux, train, drop_path_prob)


class NetworkImageNet(_NetworkBase):
  """DARTS evaluation network, ImageNet mobile setting (224x224 images)."""

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False,
               drop_path_prob: Any = None
               ) -> tuple[jax.Array, jax.Array | None]:
    """Returns (logits, aux_logits); aux_logits is None unless training
    with an auxiliary head."""
    self._check_drop_path(train, drop_path_prob)
    c = self.init_channels
    s0 = Conv(c // 2, 3, 2, name='stem0_conv0')(x)
    s0 = nn.relu(eval_ops.batch_norm(train, name='stem0_bn0')(s0))
    s0 = Conv(c, 3, 2, name='stem0_conv1')(s0)
    s0 = eval_ops.batch_norm(train, name='stem0_bn1')(s0)
    s1 = ReLUConvBN(c, 3, 2, name='stem1')(s0, train)
    aux = AuxiliaryHead(self.num_classes, pool_stride=2, bn_after_768=False,
                        name='auxiliary_head')
    # The first cell reads the stride-4 stem0 output: preprocess it with a
    # FactorizedReduce, as after a reduction cell.
    return _cells_and_heads(self, s0, s1, True, aux, train, drop_path_prob)


def _field(config: Any, name: str) -> Any:
  try:
    return config[name]
  except (KeyError, TypeError, AttributeError):
    raise UserError(f'model config has no field {name!r}; see '
                    'experiments/augment_cifar10.py for the schema') from None


def build_augment_model(model_config: Mapping[str, Any] | Any,
                        genotype: Genotype | str,
                        num_classes: int) -> nn.Module:
  """Builds NetworkCIFAR or NetworkImageNet from `config.model`.

  Args:
    model_config: fields network ('cifar' | 'imagenet'), init_channels,
      layers, auxiliary (auxiliary_weight and drop_path_prob are read by the
      trainer).
    genotype: a Genotype, or a spec for `zoo.load_genotype` (zoo name,
      text, json path or workdir).
    num_classes: classifier outputs.
  """
  known = tuple(eval_ops.AUGMENT_OPS)
  if isinstance(genotype, Genotype):
    genotype = check_genotype(genotype)
  else:
    genotype = zoo.load_genotype(genotype, known_ops=known)
  network = _field(model_config, 'network')
  classes = {'cifar': NetworkCIFAR, 'imagenet': NetworkImageNet}
  if network not in classes:
    raise UserError(f'model.network must be one of {", ".join(NETWORKS)}, got '
                    f'{network!r}')
  drop = _field(model_config, 'drop_path_prob')
  if not isinstance(drop, (int, float)) or not 0 <= drop < 1:
    raise UserError(f'model.drop_path_prob must be in [0, 1), got {drop!r}')
  return classes[network](
      genotype=genotype,
      init_channels=_field(model_config, 'init_channels'),
      num_classes=num_classes,
      layers=_field(model_config, 'layers'),
      auxiliary=bool(_field(model_config, 'auxiliary')))

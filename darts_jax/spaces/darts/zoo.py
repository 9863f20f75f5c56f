"""Published DARTS-space genotypes, and loading a genotype from any of its forms.

`load_genotype(spec)` takes a zoo name, genotype text, a .json or .txt file or a search
workdir; `save_genotype` writes a workdir's genotype.json and genotype.txt.
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

from darts_jax import files
from darts_jax.spaces.darts.genotype import (GENOTYPE_JSON, GENOTYPE_TXT, Genotype,
                                             GenotypeError, genotype_from_json,
                                             genotype_to_json, validate_genotype)
from darts_jax.spaces.darts.genotype_text import genotype_to_text, parse_genotype

# ----------------------------------------------------------------------------
# The zoo: published genotypes (op names and input indices as published).

_ZOO_TEXT: dict[str, str] = {
    # DARTS (first order), from the reference code.
    'DARTS_V1': (
        "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
        "('skip_connect', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), "
        "('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], "
        "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
        "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), "
        "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
        "('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])"),
    # DARTS (second order), the paper's CIFAR-10 cell.
    'DARTS_V2': (
        "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
        "('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), "
        "('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
        "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
        "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), "
        "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
        "('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"),
    # PC-DARTS (Xu et al., ICLR 2020), CIFAR-10.
    'PC_DARTS_cifar': (
        "Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0), "
        "('sep_conv_3x3', 0), ('dil_conv_3x3', 1), ('sep_conv_5x5', 0), "
        "('sep_conv_3x3', 1), ('avg_pool_3x3', 0), ('dil_conv_3x3', 1)], "
        "normal_concat=range(2, 6), reduce=[('sep_conv_5x5', 1), "
        "('max_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_5x5', 2), "
        "('sep_conv_3x3', 0), ('sep_conv_3x3', 3), ('sep_conv_3x3', 1), "
        "('sep_conv_3x3', 2)], reduce_concat=range(2, 6))"),
    # PC-DARTS searched directly on ImageNet (the paper's Table 3).
    'PC_DARTS_image': (
        "Genotype(normal=[('skip_connect', 1), ('sep_conv_3x3', 0), "
        "('sep_conv_3x3', 0), ('skip_connect', 1), ('sep_conv_3x3', 1), "
        "('sep_conv_3x3', 3), ('sep_conv_3x3', 1), ('dil_conv_5x5', 4)], "
        "normal_concat=range(2, 6), reduce=[('sep_conv_3x3', 0), "
        "('skip_connect', 1), ('dil_conv_5x5', 2), ('max_pool_3x3', 1), "
        "('sep_conv_3x3', 2), ('sep_conv_3x3', 1), ('sep_conv_5x5', 0), "
        "('sep_conv_3x3', 3)], reduce_concat=range(2, 6))"),
    # P-DARTS (Chen et al., ICCV 2019), CIFAR-10.
    'PDARTS': (
        "Genotype(normal=[('skip_connect', 0), ('dil_conv_3x3', 1), "
        "('skip_connect', 0),('sep_conv_3x3', 1), ('sep_conv_3x3', 1), "
        "('sep_conv_3x3', 3), ('sep_conv_3x3',0), ('dil_conv_5x5', 4)], "
        "normal_concat=range(2, 6), reduce=[('avg_pool_3x3', 0), "
        "('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('dil_conv_5x5', 2), "
        "('max_pool_3x3', 0), ('dil_conv_3x3', 1), ('dil_conv_3x3', 1), "
        "('dil_conv_5x5', 3)], reduce_concat=range(2, 6))"),
    # GDAS (Dong & Yang, CVPR 2019), CIFAR-10: AutoDL-Projects'
    # lib/nas_infer_model/DXYs/genotypes.py GDAS_V1 (its pairs per node, flattened).
    'GDAS_V1': (
        "Genotype(normal=[('skip_connect', 0), ('skip_connect', 1), "
        "('skip_connect', 0), ('sep_conv_5x5', 2), ('sep_conv_3x3', 3), "
        "('skip_connect', 0), ('sep_conv_5x5', 4), ('sep_conv_3x3', 3)], "
        "normal_concat=[2, 3, 4, 5], reduce=[('sep_conv_5x5', 0), "
        "('sep_conv_3x3', 1), ('sep_conv_5x5', 2), ('sep_conv_5x5', 1), "
        "('dil_conv_5x5', 2), ('sep_conv_3x3', 1), ('sep_conv_5x5', 0), "
        "('sep_conv_5x5', 1)], reduce_concat=[2, 3, 4, 5])"),
    # DrNAS (Chen et al., ICLR 2021), searched on CIFAR-10 and on ImageNet: the
    # official code's DARTS-space/genotypes.py.
    'DrNAS_cifar10': (
        "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_5x5', 1), "
        "('sep_conv_3x3', 1), ('sep_conv_3x3', 2), ('skip_connect', 0), "
        "('sep_conv_3x3', 1), ('sep_conv_3x3', 2), ('dil_conv_5x5', 3)], "
        "normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), "
        "('sep_conv_5x5', 1), ('dil_conv_5x5', 2), ('sep_conv_5x5', 1), "
        "('sep_conv_5x5', 1), ('dil_conv_5x5', 3), ('skip_connect', 4), "
        "('sep_conv_5x5', 1)], reduce_concat=range(2, 6))"),
    'DrNAS_imagenet': (
        "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
        "('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
        "('dil_conv_3x3', 3), ('skip_connect', 0), ('sep_conv_3x3', 1)], "
        "normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), "
        "('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2), "
        "('sep_conv_3x3', 0), ('sep_conv_3x3', 2), ('sep_conv_3x3', 3), "
        "('sep_conv_3x3', 1)], reduce_concat=range(2, 6))"),
    # NASNet-A (Zoph et al., 2018) as the DARTS paper's baseline: 5 nodes,
    # uses sep_conv_7x7, outside the DARTS search space.
    'NASNet': (
        "Genotype(normal=[('sep_conv_5x5', 1), ('sep_conv_3x3', 0), "
        "('sep_conv_5x5', 0), ('sep_conv_3x3', 0), ('avg_pool_3x3', 1), "
        "('skip_connect', 0), ('avg_pool_3x3', 0), ('avg_pool_3x3', 0), "
        "('sep_conv_3x3', 1), ('skip_connect', 1)], "
        "normal_concat=[2, 3, 4, 5, 6], reduce=[('sep_conv_5x5', 1), "
        "('sep_conv_7x7', 0), ('max_pool_3x3', 1), ('sep_conv_7x7', 0), "
        "('avg_pool_3x3', 1), ('sep_conv_5x5', 0), ('skip_connect', 3), "
        "('avg_pool_3x3', 2), ('sep_conv_3x3', 2), ('max_pool_3x3', 1)], "
        "reduce_concat=[4, 5, 6])"),
    # AmoebaNet-A (Real et al., 2019) as the DARTS paper's baseline: 5 nodes,
    # uses sep_conv_7x7 and conv_7x1_1x7.
    'AmoebaNet': (
        "Genotype(normal=[('avg_pool_3x3', 0), ('max_pool_3x3', 1), "
        "('sep_conv_3x3', 0), ('sep_conv_5x5', 2), ('sep_conv_3x3', 0), "
        "('avg_pool_3x3', 3), ('sep_conv_3x3', 1), ('skip_connect', 1), "
        "('skip_connect', 0), ('avg_pool_3x3', 1)], "
        "normal_concat=[4, 5, 6], reduce=[('avg_pool_3x3', 0), "
        "('sep_conv_3x3', 1), ('max_pool_3x3', 0), ('sep_conv_7x7', 2), "
        "('sep_conv_7x7', 0), ('avg_pool_3x3', 1), ('max_pool_3x3', 0), "
        "('max_pool_3x3', 1), ('conv_7x1_1x7', 0), ('sep_conv_3x3', 5)], "
        "reduce_concat=[3, 4, 6])"),
}

ZOO: dict[str, Genotype] = {
    name: parse_genotype(text) for name, text in _ZOO_TEXT.items()}
ZOO['DARTS'] = ZOO['DARTS_V2']

DARTS_V1 = ZOO['DARTS_V1']
DARTS_V2 = ZOO['DARTS_V2']
DARTS = ZOO['DARTS']
PC_DARTS_cifar = ZOO['PC_DARTS_cifar']
PC_DARTS_image = ZOO['PC_DARTS_image']
PDARTS = ZOO['PDARTS']
NASNet = ZOO['NASNet']
AmoebaNet = ZOO['AmoebaNet']
GDAS_V1 = ZOO['GDAS_V1']
DrNAS_cifar10 = ZOO['DrNAS_cifar10']
DrNAS_imagenet = ZOO['DrNAS_imagenet']


# ----------------------------------------------------------------------------
# Loading and saving.


def _accepted_forms() -> str:
  return (f'pass a zoo name ({", ".join(ZOO)}), genotype text like '
          f"\"Genotype(normal=[('sep_conv_3x3', 0), ...], ...)\", a .json or "
          f'.txt file, or a workdir containing {GENOTYPE_JSON}')


def _from_json_value(value: Any, known_ops: Sequence[str] | None) -> Genotype:
  if isinstance(value, dict) and 'genotype' in value:
    value = value['genotype']
  if isinstance(value, str):
    return parse_genotype(value, known_ops)
  return genotype_from_json(value, known_ops)


def _load_file(path: str, known_ops: Sequence[str] | None) -> Genotype:
  try:
    with open(path, encoding='utf-8') as f:
      content = f.read()
  except (OSError, UnicodeDecodeError) as e:
    raise GenotypeError(f'cannot read genotype file {path}: {e}') from e
  try:
    if path.lower().endswith('.json') or content.lstrip().startswith('{'):
      try:
        value = json.loads(content)
      except json.JSONDecodeError as e:
        raise GenotypeError(f'invalid JSON: {e}') from e
      return _from_json_value(value, known_ops)
    return parse_genotype(content.strip(), known_ops)
  except GenotypeError as e:
    raise GenotypeError(f'{path}: {e}') from e


def load_genotype(spec: str | os.PathLike[str],
                  known_ops: Sequence[str] | None = None) -> Genotype:
  """Loads a genotype from a zoo name, text, a file or a workdir.

  Args:
    spec: a `ZOO` name (case-insensitive), genotype text, a path to a .json
      file (`genotype_to_json` form or `{"genotype": ...}`), a path to a text
      file with genotype text, or a directory holding `genotype.json` (or
      `genotype.txt`), as written by `save_genotype`.
    known_ops: if given, every op must be one of these.

  Returns:
    The validated genotype.
  """
  if isinstance(spec, Genotype):
    return validate_genotype(spec, known_ops)
  if isinstance(spec, os.PathLike):
    spec = os.fspath(spec)
  if not isinstance(spec, str):
    raise GenotypeError(
        f'genotype spec must be a string, got {type(spec).__name__}; '
        f'{_accepted_forms()}')
  s = spec.strip()
  if not s:
    raise GenotypeError(f'empty genotype spec; {_accepted_forms()}')
  by_lower = {k.lower(): k for k in ZOO}
  if s in ZOO or s.lower() in by_lower:
    name = s if s in ZOO else by_lower[s.lower()]
    try:
      return validate_genotype(ZOO[name], known_ops)
    except GenotypeError as e:
      raise GenotypeError(f'zoo genotype {name}: {e}') from e
  if os.path.isdir(s):
    for fname in (GENOTYPE_JSON, GENOTYPE_TXT):
      path = os.path.join(s, fname)
      if os.path.isfile(path):
        return _load_file(path, known_ops)
    raise GenotypeError(
        f'directory {s} has no {GENOTYPE_JSON}; {_accepted_forms()}')
  if os.path.isfile(s):
    return _load_file(s, known_ops)
  if '(' in s or '[' in s or '=' in s:
    return parse_genotype(s, known_ops)
  raise GenotypeError(
      f'{s!r} is neither a zoo name nor an existing file or directory; '
      f'{_accepted_forms()}')


def _write_atomic(path: str, content: str) -> None:
  files.write_atomic(path, lambda f: f.write(content.encode('utf-8')))


def save_genotype(g: Genotype, directory: str | os.PathLike[str]) -> None:
  """Writes `genotype.json` and `genotype.txt` into `directory` atomically."""
  g = validate_genotype(g)
  directory = os.fspath(directory)
  os.makedirs(directory, exist_ok=True)
  d = genotype_to_json(g)
  body = ',\n'.join(f'  {json.dumps(k)}: {json.dumps(v)}' for k, v in d.items())
  _write_atomic(os.path.join(directory, GENOTYPE_JSON), '{\n' + body + '\n}\n')
  _write_atomic(os.path.join(directory, GENOTYPE_TXT),
                genotype_to_text(g) + '\n')

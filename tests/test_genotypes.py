"""Tests for darts_jax.spaces.darts.genotype, .genotype_text and .zoo: parsing, derivation,
zoo, load/save."""

import json
import os

import numpy as np
import pytest

from darts_jax.errors import UserError
from darts_jax.spaces.darts import genotype as G
from darts_jax.spaces.darts.genotype import (
    PRIMITIVES, Genotype, GenotypeError, derive_genotype, edge_list, genotype_from_json,
    genotype_to_json, num_edges)
from darts_jax.spaces.darts.genotype_text import genotype_to_text, parse_genotype
from darts_jax.spaces.darts.zoo import DARTS_V2, ZOO, load_genotype, save_genotype

# The published texts exactly as in the facts file (PDARTS has missing spaces).
FACTS_TEXTS = {
    'DARTS_V1': "DARTS_V1 = Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])",
    'DARTS_V2': "DARTS_V2 = Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])",
    'PC_DARTS_cifar': "PC_DARTS_cifar = Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 0), ('dil_conv_3x3', 1), ('sep_conv_5x5', 0), ('sep_conv_3x3', 1), ('avg_pool_3x3', 0), ('dil_conv_3x3', 1)], normal_concat=range(2, 6), reduce=[('sep_conv_5x5', 1), ('max_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_5x5', 2), ('sep_conv_3x3', 0), ('sep_conv_3x3', 3), ('sep_conv_3x3', 1), ('sep_conv_3x3', 2)], reduce_concat=range(2, 6))",
    'PDARTS': "PDARTS = Genotype(normal=[('skip_connect', 0), ('dil_conv_3x3', 1), ('skip_connect', 0),('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('sep_conv_3x3', 3), ('sep_conv_3x3',0), ('dil_conv_5x5', 4)], normal_concat=range(2, 6), reduce=[('avg_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('dil_conv_5x5', 2), ('max_pool_3x3', 0), ('dil_conv_3x3', 1), ('dil_conv_3x3', 1), ('dil_conv_5x5', 3)], reduce_concat=range(2, 6))",
}

SMALL = ("Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1)], "
         "normal_concat=[2], reduce=[('max_pool_3x3', 0), "
         "('max_pool_3x3', 1)], reduce_concat=[2])")


def _one_line_error(fn, *args, **kwargs) -> str:
  with pytest.raises(GenotypeError) as info:
    fn(*args, **kwargs)
  msg = str(info.value)
  assert msg and '\n' not in msg, msg
  assert isinstance(info.value, UserError)
  return msg


# ---------------------------------------------------------------------------
# Basics.


def test_primitives_and_edges():
  assert PRIMITIVES == ('none', 'max_pool_3x3', 'avg_pool_3x3', 'skip_connect',
                        'sep_conv_3x3', 'sep_conv_5x5', 'dil_conv_3x3',
                        'dil_conv_5x5')
  assert num_edges() == 14 and num_edges(5) == 20 and num_edges(1) == 2
  edges = edge_list()
  assert len(edges) == 14
  assert edges[:5] == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]
  assert edges[-5:] == [(3, j) for j in range(5)]
  assert all(src < dst + 2 for dst, src in edges)


# ---------------------------------------------------------------------------
# Parsing and round trips.


@pytest.mark.parametrize('name', sorted(FACTS_TEXTS))
def test_facts_texts_parse_and_round_trip(name):
  g = parse_genotype(FACTS_TEXTS[name], known_ops=PRIMITIVES)
  assert g == ZOO[name]
  assert g.steps == 4 and len(g.normal) == 8
  assert g.normal_concat == (2, 3, 4, 5) == g.reduce_concat
  assert all(isinstance(p, tuple) for p in g.normal + g.reduce)
  text = genotype_to_text(g)
  assert 'range(2, 6)' in text
  assert parse_genotype(text) == g
  d = genotype_to_json(g)
  assert genotype_from_json(json.loads(json.dumps(d))) == g
  assert d['normal'][0] == list(g.normal[0])
  # The NamedTuple repr (tuples everywhere) parses too.
  assert parse_genotype(repr(g)) == g


def test_zoo_contents():
  assert set(ZOO) >= {'DARTS_V1', 'DARTS_V2', 'DARTS', 'PC_DARTS_cifar',
                      'PDARTS', 'NASNet', 'AmoebaNet', 'GDAS_V1', 'DrNAS_cifar10',
                      'DrNAS_imagenet'}
  # AutoDL-Projects writes GDAS_V1 as one pair per node; flattened, node 5 (index 3)
  # reads node 4 and node 3.
  assert ZOO['GDAS_V1'].normal[6:] == (('sep_conv_5x5', 4), ('sep_conv_3x3', 3))
  assert ZOO['DrNAS_cifar10'].reduce[6] == ('skip_connect', 4)
  assert ZOO['DARTS'] == DARTS_V2 == ZOO['DARTS_V2']
  assert DARTS_V2.normal[-1] == ('dil_conv_3x3', 2)
  nas, amoeba = ZOO['NASNet'], ZOO['AmoebaNet']
  assert nas.steps == 5 and amoeba.steps == 5
  assert nas.normal_concat == (2, 3, 4, 5, 6) and nas.reduce_concat == (4, 5, 6)
  assert amoeba.normal_concat == (4, 5, 6) and amoeba.reduce_concat == (3, 4, 6)
  assert ('sep_conv_7x7', 0) in nas.reduce
  assert amoeba.reduce[-2:] == (('conv_7x1_1x7', 0), ('sep_conv_3x3', 5))
  for g in ZOO.values():
    assert parse_genotype(genotype_to_text(g)) == g
    assert genotype_from_json(genotype_to_json(g)) == g
  assert 'reduce_concat=range(4, 7)' in genotype_to_text(nas)
  assert '[3, 4, 6]' in genotype_to_text(amoeba)


def test_range_and_list_forms_equal():
  a = parse_genotype(FACTS_TEXTS['DARTS_V2'])
  b = parse_genotype(FACTS_TEXTS['DARTS_V2'].replace('[2, 3, 4, 5]',
                                                     'range(2, 6)'))
  c = parse_genotype(FACTS_TEXTS['DARTS_V2'].replace('[2, 3, 4, 5]',
                                                     '(2,3,4,5,)'))
  assert a == b == c


def test_lenient_syntax():
  text = '''
  my_arch = Genotype(
      reduce_concat = range(2,3),
      reduce = ( ["max_pool_3x3",0], ("max_pool_3x3" , 1 ,) , ),
      normal=[("sep_conv_3x3",0),('skip_connect',1)],  # a comment
      normal_concat=[2,],
  )
  '''
  assert parse_genotype(text) == parse_genotype(SMALL)
  positional = ("Genotype([('sep_conv_3x3', 0), ('skip_connect', 1)], [2], "
                "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], "
                "reduce_concat=[2])")
  assert parse_genotype(positional) == parse_genotype(SMALL)


MALFORMED = [
    ('', 'empty'),
    ('   \n ', 'empty'),
    ("__import__('os').system('x')", "'Genotype('"),
    ("Genotype(normal=[('sep_conv_3x3', 0)).__class__", "']'"),
    ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
     "normal_concat=[2], reduce=[('a', 0), ('b', 1)], reduce_concat=[2])",
     "'('"),  # missing closing bracket of the normal list
    (SMALL.replace("('skip_connect', 1)", "('skip_connect', 2)"),
     'input must be an integer in 0..1'),
    (SMALL.replace("('skip_connect', 1)", "('skip_connect', -1)"),
     'input must be an integer in 0..1'),
    (SMALL.replace("('skip_connect', 1)", "('skip_connect', x)"),
     'integer'),
    (SMALL.replace("('skip_connect', 1)", "(skip_connect, 1)"),
     'quoted op name'),
    (SMALL.replace(", ('skip_connect', 1)", ''), 'has 1 edges'),
    (SMALL.replace('normal_concat', 'normal_cat'),
     "unknown keyword 'normal_cat'"),
    (SMALL.replace(', reduce_concat=[2]', ''), 'missing reduce_concat'),
    (SMALL.replace('reduce_concat=[2]', 'reduce_concat=range(6, 2)'), 'empty'),
    (SMALL.replace('reduce_concat=[2]', 'reduce_concat=range(2, 9)'),
     'not an intermediate node'),
    (SMALL.replace('reduce_concat=[2]', 'reduce_concat=range(2, 6, 1)'),
     'range takes (start, stop)'),
    (SMALL.replace('reduce_concat=[2]', 'reduce_concat=rang(2, 3)'),
     'range(start, stop)'),
    (SMALL.replace('reduce_concat=[2]', 'reduce_concat=[]'), 'non-empty'),
    (SMALL.replace("reduce_concat=[2]", "reduce_concat=[2], normal=[]"),
     "duplicate keyword 'normal'"),
    (SMALL + ' trailing', 'end of text'),
    (SMALL.replace("'max_pool_3x3', 0", "'max_pool_3x3, 0"),
     'missing closing quote'),
    ("Genotype(normal=[('sep_conv_3x3, 0)])", 'unterminated string at column 19'),
    ("Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1), "
     "('sep_conv_3x3', 0), ('skip_connect', 1)], normal_concat=[2], "
     "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2])",
     'same number of nodes'),
    ('Genotype(normal=[("sep_conv_3x3", 0), ("skip_connect", 1)]',
     "',' or ')'"),
]


@pytest.mark.parametrize('text,fragment', MALFORMED)
def test_malformed_text(text, fragment):
  msg = _one_line_error(parse_genotype, text)
  assert fragment in msg, msg


def test_malformed_message_has_position_and_form():
  bad = "Genotype(normal=[('sep_conv_3x3', 0) ('skip_connect', 1)])"
  msg = _one_line_error(parse_genotype, bad)
  assert msg.startswith('malformed genotype:')
  assert "expected ',' or ']'" in msg
  assert f'column {bad.index(" (") + 2}' in msg
  assert 'expected form: Genotype(normal=' in msg
  multi = "Genotype(\n normal=[('a', 0),\n ('b' 1)])"
  assert 'line 3, column 7' in _one_line_error(parse_genotype, multi)


def test_unknown_op_lists_known_ops():
  text = SMALL.replace('sep_conv_3x3', 'sep_conv_9x9')
  assert parse_genotype(text).normal[0] == ('sep_conv_9x9', 0)
  msg = _one_line_error(parse_genotype, text, known_ops=PRIMITIVES)
  assert "unknown op 'sep_conv_9x9' in normal[0]" in msg
  assert ', '.join(PRIMITIVES) in msg
  msg = _one_line_error(load_genotype, 'NASNet', known_ops=PRIMITIVES)
  assert 'sep_conv_7x7' in msg


@pytest.mark.parametrize('d,fragment', [
    ([], 'expected an object'),
    ({'normal': [['a', 0], ['b', 1]]}, 'missing key'),
    (dict(genotype_to_json(DARTS_V2), extra=1), "unknown key(s) extra"),
    (dict(genotype_to_json(DARTS_V2), normal=[['a', 0], ['b', 5]]),
     'normal[1]'),
    (dict(genotype_to_json(DARTS_V2), normal=[['a', True], ['b', 0]]),
     'normal[0]'),
    (dict(genotype_to_json(DARTS_V2), normal_concat='2345'), 'normal_concat'),
    (dict(genotype_to_json(DARTS_V2), reduce=[['a', 0, 1], ['b', 0]]),
     'reduce[0]'),
])
def test_malformed_json(d, fragment):
  msg = _one_line_error(genotype_from_json, d)
  assert fragment in msg, msg


# ---------------------------------------------------------------------------
# Derivation.


def _alphas_for(cell, primitives=PRIMITIVES, steps=4, base=None):
  """Logits whose discretization is `cell` (first pair of a node strongest)."""
  rng = np.random.default_rng(0)
  a = (rng.normal(size=(num_edges(steps), len(primitives))) * 1e-3
       if base is None else base.copy())
  rows = {e: r for r, e in enumerate(edge_list(steps))}
  for idx, (op, src) in enumerate(cell):
    node = idx // 2
    a[rows[(node, src)], primitives.index(op)] = 10.0 - (idx % 2)
  return a


def test_derive_reproduces_zoo_genotypes():
  for name in ('DARTS_V1', 'DARTS_V2', 'PC_DARTS_cifar', 'PDARTS'):
    g = ZOO[name]
    an, ar = _alphas_for(g.normal), _alphas_for(g.reduce)
    assert derive_genotype(an, ar, PRIMITIVES) == g, name
    assert derive_genotype(an, ar, list(PRIMITIVES), steps=4,
                           multiplier=4) == g


def test_derive_accepts_jax_arrays():
  jnp = pytest.importorskip('jax.numpy')
  an, ar = _alphas_for(DARTS_V2.normal), _alphas_for(DARTS_V2.reduce)
  assert derive_genotype(jnp.asarray(an, jnp.float32),
                         jnp.asarray(ar, jnp.float32), PRIMITIVES) == DARTS_V2


def test_derive_never_picks_none_and_keeps_two_edges():
  steps = 2
  a = np.zeros((num_edges(steps), len(PRIMITIVES)))
  # 'none' dominates every edge, but is never selected.
  a[:, 0] = 50.0
  # Node 0 (edges 0, 1): edge 1 stronger.
  a[0, PRIMITIVES.index('max_pool_3x3')] = 1.0
  a[1, PRIMITIVES.index('sep_conv_5x5')] = 2.0
  # Node 1 (edges 2, 3, 4 from states 0, 1, 2): keep states 2 and 0.
  a[2, PRIMITIVES.index('dil_conv_3x3')] = 3.0
  a[3, PRIMITIVES.index('skip_connect')] = 1.0
  a[4, PRIMITIVES.index('sep_conv_3x3')] = 4.0
  g = derive_genotype(a, a, PRIMITIVES, steps=steps, multiplier=2)
  assert g.normal == (('sep_conv_5x5', 1), ('max_pool_3x3', 0),
                      ('sep_conv_3x3', 2), ('dil_conv_3x3', 0))
  assert g.normal_concat == (2, 3) and g.reduce == g.normal
  assert all(op != 'none' for op, _ in g.normal)
  # Strength is softmax weight, not logit: a big logit on an edge where
  # another op is also big loses to a moderate logit that stands alone.
  b = np.zeros((2, 3))
  b[0] = [5.0, 5.0, 0.0]   # each of ops 0, 1 weighs ~0.5
  b[1] = [0.0, 0.0, 3.0]   # op 2 weighs ~0.9
  g = derive_genotype(b, b, ('x', 'y', 'z'), steps=1, multiplier=1)
  assert g.normal == (('z', 1), ('x', 0))  # no 'none': all ops eligible.
  assert g.normal_concat == (2,)


def test_derive_ties_and_concat():
  a = np.zeros((num_edges(), len(PRIMITIVES)))
  g = derive_genotype(a, a, PRIMITIVES)
  # All equal: lowest edges, first non-'none' op.
  assert g.normal == tuple(
      p for i in range(4) for p in (('max_pool_3x3', 0), ('max_pool_3x3', 1)))
  assert derive_genotype(a, a, PRIMITIVES, multiplier=2).normal_concat == (4, 5)
  assert 'shape' in _one_line_error(derive_genotype, a[:5], a, PRIMITIVES)
  assert 'multiplier' in _one_line_error(derive_genotype, a, a, PRIMITIVES,
                                         multiplier=5)
  assert 'NaN' in _one_line_error(derive_genotype, a * np.nan, a, PRIMITIVES)


# ---------------------------------------------------------------------------
# Load and save.


def test_load_by_name_and_text():
  assert load_genotype('DARTS_V2') == DARTS_V2
  assert load_genotype('darts') == DARTS_V2
  assert load_genotype(' PC_DARTS_cifar ', known_ops=PRIMITIVES) == ZOO[
      'PC_DARTS_cifar']
  assert load_genotype(FACTS_TEXTS['PDARTS']) == ZOO['PDARTS']
  assert load_genotype(DARTS_V2) == DARTS_V2


def test_save_and_load_files(tmp_path):
  g = ZOO['PDARTS']
  workdir = tmp_path / 'run'
  save_genotype(g, workdir)
  assert sorted(os.listdir(workdir)) == ['genotype.json', 'genotype.txt']
  assert load_genotype(str(workdir)) == g
  assert load_genotype(workdir) == g
  assert load_genotype(str(workdir / 'genotype.json')) == g
  assert load_genotype(str(workdir / 'genotype.txt')) == g
  assert json.loads((workdir / 'genotype.json').read_text()) == (
      genotype_to_json(g))
  save_genotype(DARTS_V2, workdir)  # overwrite in place
  assert load_genotype(str(workdir)) == DARTS_V2
  assert sorted(os.listdir(workdir)) == ['genotype.json', 'genotype.txt']

  wrapped = tmp_path / 'result.json'
  wrapped.write_text(json.dumps({'genotype': genotype_to_json(g), 'acc': 97}))
  assert load_genotype(str(wrapped)) == g
  as_text = tmp_path / 'as_text.json'
  as_text.write_text(json.dumps({'genotype': FACTS_TEXTS['DARTS_V1']}))
  assert load_genotype(str(as_text)) == ZOO['DARTS_V1']
  txt = tmp_path / 'arch.txt'
  txt.write_text(FACTS_TEXTS['DARTS_V1'] + '\n')
  assert load_genotype(str(txt)) == ZOO['DARTS_V1']


def test_load_errors(tmp_path):
  msg = _one_line_error(load_genotype, 'DARTS_V3')
  assert 'DARTS_V3' in msg and 'DARTS_V2' in msg and 'AmoebaNet' in msg
  assert 'workdir' in msg
  assert 'zoo name' in _one_line_error(load_genotype, str(tmp_path / 'no.json'))
  assert 'genotype.json' in _one_line_error(load_genotype, str(tmp_path))
  assert 'empty' in _one_line_error(load_genotype, '')
  bad = tmp_path / 'bad.json'
  bad.write_text('{"normal": [}')
  msg = _one_line_error(load_genotype, str(bad))
  assert 'bad.json' in msg and 'invalid JSON' in msg
  bad_txt = tmp_path / 'bad.txt'
  bad_txt.write_text("Genotype(normal=[('a', 0)")
  assert 'bad.txt: malformed genotype' in _one_line_error(load_genotype,
                                                         str(bad_txt))
  assert 'malformed' in _one_line_error(load_genotype, 'Genotype(normal=[')
  assert 'unknown op' in _one_line_error(
      load_genotype, SMALL.replace('sep_conv_3x3', 'conv9'), PRIMITIVES)


def test_genotype_is_hashable_and_steps():
  assert hash(DARTS_V2) == hash(parse_genotype(genotype_to_text(DARTS_V2)))
  assert isinstance(DARTS_V2, Genotype) and DARTS_V2.steps == 4
  assert G.validate_genotype(
      Genotype([['a', 0], ['b', 1]], [2], [('c', 0), ('d', 1)], range(2, 3))
  ) == Genotype((('a', 0), ('b', 1)), (2,), (('c', 0), ('d', 1)), (2,))

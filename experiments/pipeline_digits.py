"""The README's main job: 4 searches on digits in one program, then every seed's derived
cell and a random cell per seed trained from scratch, compared as the papers compare.

Command:
  python -m darts_jax.main --config=experiments/pipeline_digits.py --workdir=workdirs/digits

Stages (each in its own subdirectory of the workdir, each resumable):
  search/          experiments/search_digits.py (2-cell supernet, 8 ops, 20 epochs, first
                   order) for seeds 0-3 at once (config.search.seeds);
  augment/seed_s/  seed s's derived genotype trained from scratch (experiments/augment_digits.py,
                   training seed s);
  random/seed_s/   a random cell of the same space (drawn with seed s), same training: the
                   baseline every NAS paper compares with.
Prints the per-seed table, mean +- std of the search's validation accuracy, of both test
accuracies and parameter counts, the paired t-test of searched against random cells and a
plain verdict; writes result.json and report.html at the workdir's root.
Expected (2-core Intel Xeon, 2026-12-08, no compilation cache): 6 min 40 s in all; search
val_acc 0.9458 +- 0.0093, searched cells' test_acc 0.9431 +- 0.0070 against random cells'
0.9326 +- 0.0095 (searched better in 3 of 4 seeds, paired t-test p = 0.108: "no
significant difference"), 11686 +- 3052 against 27074 +- 7536 weights.
`--config.search.seeds="()"` runs the single-seed pipeline of config.search.seed.
"""

import ml_collections

from darts_jax import configs

SEEDS = (0, 1, 2, 3)


def get_config(arg: str = 'first') -> ml_collections.ConfigDict:
  search = configs.search_digits_config(arg)
  search.seeds = SEEDS
  return configs.pipeline_config(search, configs.augment_digits_config())

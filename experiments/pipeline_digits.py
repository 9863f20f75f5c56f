"""The README's main job: search on digits, then train the derived cell and a random cell.

Command:
  python -m darts_jax.main --config=experiments/pipeline_digits.py --workdir=workdirs/digits

Stages (each in its own subdirectory of the workdir, each resumable):
  search/   experiments/search_digits.py (2-cell supernet, 8 ops, 20 epochs, first order);
  augment/  the derived genotype trained from scratch (experiments/augment_digits.py);
  random/   a random cell of the same space, same training: the baseline every NAS paper
            compares with.
Prints the derived genotype, the search's validation accuracy and both test accuracies;
writes result.json and report.html at the workdir's root.
Expected (2-core AMD EPYC, 2026-12-07, no compilation cache): 1 min 54 s in all; search
val 0.944, derived cell 0.933, random cell 0.933 (docs/history.md, "The demo's numbers
over the sessions").
"""

import ml_collections

from darts_jax import configs


def get_config(arg: str = 'first') -> ml_collections.ConfigDict:
  return configs.pipeline_config(configs.search_digits_config(arg),
                                 configs.augment_digits_config())

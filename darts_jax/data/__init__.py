"""Data: datasets as random-access sources, the search split, batching, device augmentation.

The names a trainer uses, from the modules that define them.
"""

from darts_jax.data.datasets import DATASETS, DatasetInfo, Source, get_info, load_source
from darts_jax.data.loader import epoch_batches, epoch_loader
from darts_jax.data.sources import dataset_info, dataset_kind, load_split
from darts_jax.data.splits import (check_search_split, search_indices, search_split_random,
                                   split_digest)

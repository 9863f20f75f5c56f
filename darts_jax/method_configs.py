"""Kept for config files written before the package layout of issue 38: the benchmark
configs now live in `darts_jax.configs.benchmarks`."""

from darts_jax.configs.benchmarks import (augment_nb201, parse_arg, search_cifar10,  # noqa: F401
                                          search_imagenet, search_nb201)

"""Numerics of the networks: convolutions, pools, batch norm, initializers, weight counts."""

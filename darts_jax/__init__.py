"""darts_jax: differentiable architecture search (DARTS) on JAX."""

__version__ = "0.1.0"

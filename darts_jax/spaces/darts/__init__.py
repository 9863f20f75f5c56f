"""The DARTS search space: ops, supernet, genotypes, the evaluation network, the plug-in."""

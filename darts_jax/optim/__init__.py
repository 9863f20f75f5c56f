"""Optimization maths: the bilevel hypergradients (`architect`) and the optimizers (`sgd`)."""

"""Training: the one loop, the steps, the search, the evaluation and the pipeline."""

"""Pictures and the HTML report of a search, generic over search spaces.

`cell_drawing` draws a space's `CellGraph`s, `alpha_plots` the alphas files (heat map,
evolution), `run_files` finds what a workdir holds, `workdir` draws a workdir or a running
search's epoch (`python -m darts_jax.visualize`), `report` writes report.html
(`python -m darts_jax.report`). Imports `darts_jax.spaces` and the core, never the
methods or the trainer.
"""

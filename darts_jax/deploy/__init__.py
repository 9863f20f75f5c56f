"""Deployable networks out of evaluation runs: export (StableHLO, ONNX) and prediction.

  loading    a run's network and trained variables from its workdir (`load_run`)
  lowering   the inference jaxpr with darts_jax's own primitives replaced, per exporter
  stablehlo  jax.export: serialized, batch polymorphic, several platforms
  onnx       jax2onnx, checked with onnxruntime (imported lazily)
  manifest   manifest.json: input, normalization, classes, provenance, load snippets
  exporter   `export_run`: all of it for one workdir (python -m darts_jax.export)
  predict    top-k classes of image files with an export (python -m darts_jax.predict)

The package sits at the entry points' level: it imports spaces, data, runtime, nn and
train.augment.init_state, and nothing imports it but the two CLIs.
"""

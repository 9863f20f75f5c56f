"""What a search writes into its workdir, per epoch and at the end (process 0 only).

  alphas/epoch_NNN.npz   every alpha array, `primitives` and `edges` ((dst, src) per row)
  genotypes.jsonl        one line per epoch: the derived architecture as JSON and text
  plots/                 the epoch's cells and alpha heat map (`darts_jax.viz`)
  genotype.json/.txt ... the final architecture (the space's files), alphas.npz, result.json
"""

import json
import os

import numpy as np

from darts_jax.runtime import checkpoint


def write_alphas(path: str, space, alphas: dict) -> None:
  checkpoint.write_npz(path, primitives=np.array(space.primitives),
                       edges=np.array(space.edges(), np.int64), **alphas)


def write_epoch(workdir: str, epoch: int, space, alphas: dict, arch) -> None:
  """Epoch `epoch`'s (1-based) alphas, genotypes.jsonl line and pictures."""
  write_alphas(os.path.join(workdir, 'alphas', f'epoch_{epoch:03d}.npz'), space, alphas)
  with open(os.path.join(workdir, 'genotypes.jsonl'), 'a', encoding='utf-8') as f:
    f.write(json.dumps({'epoch': epoch, 'genotype': space.to_json(arch),
                        'text': space.to_text(arch)}) + '\n')
  from darts_jax.viz import workdir as viz_workdir  # matplotlib: only where pictures are drawn.
  viz_workdir.draw_epoch(workdir, epoch, space, arch, alphas, list(space.primitives),
                         space.edges())


def write_result(workdir: str, space, arch, alphas: dict, result: dict) -> None:
  """The final architecture, alphas and result.json, then the HTML report."""
  space.save(arch, workdir)
  write_alphas(os.path.join(workdir, 'alphas.npz'), space, alphas)
  checkpoint.write_json(os.path.join(workdir, 'result.json'), result)
  write_report(workdir)


def write_report(workdir: str) -> None:
  from darts_jax.viz import report  # matplotlib: only where pictures are drawn.
  report.write_report_or_warn(workdir)

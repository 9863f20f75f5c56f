"""A new search method in one file, without editing darts_jax: DARTS with noisy alphas.

The weight step sees softmax(alpha + u), u ~ U(-epsilon, epsilon) drawn afresh every step
(the random smoothing of SDARTS-RS, Chen & Hsieh, ICML 2020); the alpha step and
validation see the plain softmax(alpha). It is one class deriving from DARTS that
overrides one hook, registered under its own name; its field `noise_epsilon` becomes
`config.method.noise_epsilon`.

Run it (a tiny search on the bundled digits, well under a minute after the compile):
  python experiments/custom_method.py --workdir=/tmp/custom_method
or as a config of the main entry point (any field can be overridden):
  python -m darts_jax.main --config=experiments/custom_method.py --workdir=/tmp/custom_method \
      --config.method.noise_epsilon=0.1
It prints the derived genotype.
"""

import dataclasses
from typing import Optional

from absl import app
from absl import flags
import jax
import ml_collections

from darts_jax import configs
from darts_jax import methods


@methods.register
@dataclasses.dataclass(frozen=True)
class NoisyAlphaDarts(methods.Darts):
  """DARTS whose weight step trains on uniformly perturbed alphas."""
  name = 'noisy_alpha_darts'
  deterministic_forward = False  # The weight step's edge weights are not the alpha step's.

  noise_epsilon: float = 0.03

  def edge_weights(self, alphas: dict, forward: methods.Forward, key: Optional[jax.Array],
                   epoch) -> dict:
    if forward != methods.Forward.WEIGHT_STEP:
      return super().edge_weights(alphas, forward, key, epoch)
    cells = self.space.cell_types
    noisy = {c: alphas[c] + jax.random.uniform(k, alphas[c].shape, alphas[c].dtype,
                                               -self.noise_epsilon, self.noise_epsilon)
             for c, k in zip(cells, jax.random.split(key, len(cells)))}
    return super().edge_weights(noisy, forward, key, epoch)


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  """The tiny digits search with this method (`arg` unused)."""
  del arg
  config = configs.search_tiny_config()
  config.method.name = NoisyAlphaDarts.name
  return config


def main(argv):
  del argv
  from darts_jax.train import search  # pylint: disable=g-import-not-at-top
  result = search.search(get_config(), flags.FLAGS.workdir)
  print(f'method: {result["method"]}')
  print(f'genotype: {result["genotype"]}')


if __name__ == '__main__':
  flags.DEFINE_string('workdir', '/tmp/darts_jax_custom_method', 'Directory for the run.')
  app.run(main)

"""The search: bilevel optimization of a supernet, then discretization.

`search(config, workdir)` is the entry point (`darts_jax.main` calls it for
config.mode == 'search'); it resumes from the workdir's checkpoint when there is one.
The space and the method come from their registries (config.search_space.name,
config.method.name); everything they decide goes through their interfaces.
"""

from absl import logging
import jax
import ml_collections

from darts_jax import data
from darts_jax.runtime import checkpoint
from darts_jax.runtime import parallel
from darts_jax.runtime import preemption
from darts_jax.train import loop
from darts_jax.train import outputs
from darts_jax.train import parts
from darts_jax.train import population


def search(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs (or resumes) a search; writes metrics, alphas and architectures to `workdir`.

  With config.seeds, a population of searches in one program (`population`).
  """
  if config.get('seeds', ()):
    return population.search_population(config, workdir)
  # Setup: the config is read here, once.
  info = data.dataset_info(config.dataset)
  mesh = parallel.make_mesh()
  search_parts = parts.check_config(config, info, mesh.size, jax.process_count())
  is_main = jax.process_index() == 0
  checkpoint.prepare_workdir(workdir, config, mode='search', write=is_main)
  split = parts.SearchData.from_config(config)

  # Model and state (resumed from the newest readable checkpoint, if any).
  state = search_parts.init_state(info.image_shape)
  # Replicated first, so that a checkpoint is restored straight into the replicated
  # layout: with several processes, moving a restored array there is a cross-host copy.
  state = parallel.replicate(state, mesh)
  state, meta = checkpoint.restore_latest(workdir, state)
  split.check_resumed(meta, workdir)

  # Steps: the search step compiled before the first (and checked against the device's
  # memory; config.train.batch_size 'auto' picks the largest batch that fits).
  data_parts = [(split.source, idx, config.seed * 2 + k)
                for k, idx in enumerate((split.train_idx, split.val_idx))]
  search_step, batch = loop.compile_step(
      lambda b, split=split: search_parts.search_step(info, split.with_batch(b).steps_per_epoch),
      state,
      data_parts, parallel.shard_batch, mesh, split.batch_size or None, split.max_batch,
      config.get('memory_limit_gb', 0.0))
  split = split.with_batch(batch)
  eval_step = parallel.jit(search_parts.eval_step(info))

  def validate(state, indices=split.val_idx):
    return loop.evaluate(eval_step, state, split.source, indices, config.eval_batch_size, mesh)

  last_line = {}  # The last epoch's metrics line of this run.

  def end_of_epoch(epoch, state, host, writer):
    val_loss, val_acc = validate(state)
    alphas = jax.device_get(state['alphas'])
    line = parts.epoch_line(host, val_loss, val_acc, alphas, search_parts.space,
                            search_parts.arch_opt.lr)
    last_line.update(line)
    arch, stop = parts.end_of_epoch(search_parts, epoch, alphas, line, writer,
                                    loop.step_of(state), workdir, is_main)
    logging.info('epoch %d: train_acc %.4f val_acc %.4f genotype %s', epoch + 1,
                 line['train_acc'], val_acc, search_parts.space.to_text(arch))
    return line, stop

  every, keep = preemption.checkpoint_settings(config)
  run = loop.run_epochs(loop.Loop(
      workdir=workdir, step=search_step,
      parts=data_parts,
      batch_size=split.batch_size, steps_per_epoch=split.steps_per_epoch,
      epochs=config.train.epochs,
      end_epoch=parts.end_epoch(config, loop.step_of(state),
                                split.steps_per_epoch),
      end_of_epoch=end_of_epoch, hint='lower config.train.lr or config.arch.lr',
      checkpoint_every=every, checkpoints_to_keep=keep, data_split=split.split_digest,
      jsonl_files=('metrics.jsonl', 'genotypes.jsonl')), state, meta, mesh)
  if run.preempted:
    return run.preempted

  def validation_accuracy(alphas, num_examples: int) -> float:
    indices = split.val_idx[:num_examples] if num_examples > 0 else split.val_idx
    return validate(dict(run.state, alphas=parallel.replicate(alphas, mesh)), indices)[1]

  arch, alphas, result = parts.search_result(
      search_parts, jax.device_get(run.state['alphas']), config.seed, validation_accuracy,
      last_line.get('val_acc'), config.train.epochs)
  if is_main:
    outputs.write_result(workdir, search_parts.space, arch, alphas, result)
  return result

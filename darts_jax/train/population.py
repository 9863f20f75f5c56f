"""A population of searches in one program: config.seeds mapped over a seed axis.

N independent searches share one jitted step: every leaf of the state (weights, alphas,
both optimizer states, batch statistics, the step counter) has a leading seed axis and
the step is `jax.vmap` of the one-seed step, whose key is fold_in(key(seed), step). Each
seed has its own init and, unless config.shared_data_order, its own data order (the
loader seeds of the single-seed search with that seed); batch statistics stay per seed.
All seeds share the search split of config.seed (the default 'ordered' split is the
same for every seed). So seed s's search is the single-seed search with config.seed = s,
up to the float summation order of the batched program.

Outputs: `<workdir>/seed_<s>/` is seed s's search workdir (its config.json, metrics.jsonl,
genotypes.jsonl, alphas/, plots/, tensorboard/, the architecture's files, alphas.npz,
result.json, report.html); `<workdir>` holds the shared checkpoints, metrics.jsonl (the
seeds' means per epoch), result.json (the per-seed table and the aggregates) and a
report of the population.
"""

from __future__ import annotations

import os

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from darts_jax import data
from darts_jax.errors import UserError
from darts_jax.runtime import checkpoint
from darts_jax.runtime import metrics
from darts_jax.runtime import parallel
from darts_jax.runtime import preemption
from darts_jax.train import loop
from darts_jax.train import outputs
from darts_jax.train import parts
from darts_jax.train import spread


def seed_dir(workdir: str, seed: int) -> str:
  return os.path.join(workdir, f'seed_{seed}')


def check_seeds(seeds, process_count: int) -> tuple[int, ...]:
  seeds = tuple(seeds)
  if not all(isinstance(s, int) and s >= 0 for s in seeds) or len(set(seeds)) != len(seeds):
    raise UserError(f'config.seeds must be distinct integers >= 0, got {seeds!r}')
  if process_count > 1:
    raise UserError('a population (config.seeds) runs in one process over its devices; '
                    'run one population per host, or set config.seeds=() for a multi-host '
                    'search')
  return seeds


def seed_config(config: ml_collections.ConfigDict, seed: int) -> ml_collections.ConfigDict:
  """The single-seed search config of one seed of the population."""
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.seed = seed
    config.seeds = ()
  return config


def stack(trees):
  return jax.tree.map(lambda *leaves: np.stack([np.asarray(x) for x in leaves]), *trees)


def take(tree, i: int):
  return jax.tree.map(lambda x: x[i], tree)


def init_states(search_parts, image_shape, seeds) -> dict:
  """Every seed's initial state, stacked on a leading seed axis."""
  return stack([search_parts.init_state(image_shape, s) for s in seeds])


def population_step(search_parts, info, steps_per_epoch: int, seeds, shared_order: bool):
  """The one-seed search step mapped over the seeds: (state, train, val) -> (state,
  metrics), batches [seeds, batch, ...] (shared_order: one [batch, ...] for all)."""
  seed_array = jnp.asarray(seeds, jnp.int32)
  batch_axis = None if shared_order else 0
  one_step = search_parts.search_step(info, steps_per_epoch, seeded=False)
  mapped = jax.vmap(one_step, in_axes=(0, 0, batch_axis, batch_axis))
  return lambda state, train, val: mapped(seed_array, state, train, val)


def search_population(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs (or resumes) len(config.seeds) searches in one program (see the module doc)."""
  # Setup: the config is read here, once.
  seeds = check_seeds(config.seeds, jax.process_count())
  info = data.dataset_info(config.dataset)
  mesh = parallel.make_population_mesh(len(seeds))
  search_parts = parts.check_config(config, info, mesh.shape[parallel.DATA_AXIS])
  space = search_parts.space
  checkpoint.prepare_workdir(workdir, config, mode='search')
  for seed in seeds:
    checkpoint.prepare_workdir(seed_dir(workdir, seed), seed_config(config, seed),
                               mode='search')
  split = parts.SearchData.from_config(config)
  shared_order = bool(config.get('shared_data_order', False))

  # State: each seed's init, stacked (resumed from the newest readable checkpoint, if any).
  state = parallel.shard_seeds(init_states(search_parts, info.image_shape, seeds), mesh)
  state, meta = checkpoint.restore_latest(workdir, state)
  split.check_resumed(meta, workdir)

  # Steps: the one-seed step and eval sums, mapped over the seed axis; the step compiled
  # before the first (and checked against the device's memory, as in `search`).
  loader_seeds = [seeds[0] * 2 + k if shared_order else tuple(s * 2 + k for s in seeds)
                  for k in (0, 1)]
  data_parts = [(split.source, idx, loader_seed)
                for idx, loader_seed in zip((split.train_idx, split.val_idx), loader_seeds)]
  shard = parallel.shard_batch if shared_order else parallel.shard_seed_batches
  search_step, batch = loop.compile_step(
      lambda b, split=split: population_step(search_parts, info,
                                             split.with_batch(b).steps_per_epoch, seeds,
                                             shared_order),
      state, data_parts, shard, mesh, split.batch_size or None, split.max_batch,
      config.get('memory_limit_gb', 0.0))
  split = split.with_batch(batch)
  one_eval = search_parts.eval_step(info)
  eval_step = parallel.jit(jax.vmap(one_eval, in_axes=(0, None, None)))

  start_step = loop.step_of(state)
  writers = {s: metrics.MetricWriter(seed_dir(workdir, s), first_step=start_step + 1)
             for s in seeds}
  last_lines = {}

  def end_of_epoch(epoch, state, host, writer):
    del writer  # The population's line is written by the loop; each seed's here.
    val_loss, val_acc = loop.evaluate(eval_step, state, split.source, split.val_idx,
                                      config.eval_batch_size, mesh)
    alphas = jax.device_get(state['alphas'])
    step = loop.step_of(state)
    stops = []
    for i, seed in enumerate(seeds):
      seed_host = [{k: v[i] for k, v in m.items()} for m in host]
      seed_alphas = take(alphas, i)
      line = parts.epoch_line(seed_host, float(val_loss[i]), float(val_acc[i]), seed_alphas,
                              space, search_parts.arch_opt.lr)
      last_lines[seed] = line
      arch, stop = parts.end_of_epoch(search_parts, epoch, seed_alphas, line, writers[seed],
                                      step, seed_dir(workdir, seed), True)
      writers[seed].write(step, {'epoch': epoch + 1, **line})
      stops.append(stop)
      logging.info('epoch %d, seed %d: val_acc %.4f genotype %s', epoch + 1, seed,
                   line['val_acc'], space.to_text(arch))
    return spread.mean_line(list(last_lines.values())), all(stops)

  every, keep = preemption.checkpoint_settings(config)
  try:
    run = loop.run_epochs(loop.Loop(
        workdir=workdir, step=search_step,
        parts=data_parts,
        batch_size=split.batch_size, steps_per_epoch=split.steps_per_epoch,
        epochs=config.train.epochs,
        end_epoch=parts.end_epoch(config, start_step, split.steps_per_epoch),
        end_of_epoch=end_of_epoch, hint='lower config.train.lr or config.arch.lr',
        checkpoint_every=every, checkpoints_to_keep=keep, data_split=split.split_digest,
        jsonl_files=('metrics.jsonl',) + tuple(
            os.path.join(f'seed_{s}', name) for s in seeds
            for name in ('metrics.jsonl', 'genotypes.jsonl')),
        shard=shard,
        seeds=seeds), state, meta, mesh)
  finally:
    for writer in writers.values():
      writer.close()
  if run.preempted:
    return run.preempted

  # The end of every seed's search, with the one-seed eval for the method's hook.
  single_eval = parallel.jit(one_eval)
  results = {}
  for i, seed in enumerate(seeds):
    seed_state = parallel.replicate(take(run.state, i), mesh)

    def validation_accuracy(alphas, num_examples: int, seed_state=seed_state) -> float:
      indices = split.val_idx[:num_examples] if num_examples > 0 else split.val_idx
      candidate = dict(seed_state, alphas=parallel.replicate(alphas, mesh))
      return loop.evaluate(single_eval, candidate, split.source, indices,
                           config.eval_batch_size, mesh)[1]

    val_acc = last_lines[seed]['val_acc'] if seed in last_lines else None
    arch, alphas, result = parts.search_result(
        search_parts, jax.device_get(take(run.state['alphas'], i)), seed,
        validation_accuracy, val_acc, config.train.epochs)
    outputs.write_result(seed_dir(workdir, seed), space, arch, alphas, result)
    results[seed] = (arch, result)
  summary = spread.population_summary(space, results, search_parts.method.name,
                                      config.train.epochs)
  checkpoint.write_json(os.path.join(workdir, 'result.json'), summary)
  outputs.write_report(workdir)
  return summary

"""Population checkpoints with Orbax, and the public loaders.

``checkpoints/<epoch>/`` of a run's workdir (see :mod:`jaxsparse.workdir`)
holds the whole population state (params, BatchNorm statistics, optimizer
state, masks, PRNG keys, epoch) written by Orbax's CheckpointManager, which
writes to a temporary directory and renames it when complete, so a
half-written checkpoint is never restored. Beside it, ``checksums.json``
holds a SHA-256 digest of every saved array, checked on restore, so that
damaged files (a bit flip, a partial copy) are named instead of restored as
wrong weights. A checkpoint without the file (killed between the two
writes, or written before checksums existed) is restored unchecked, as
Orbax completed it.

:func:`load_population` and :func:`load_member` rebuild the abstract state
from ``metadata.json`` (:func:`jaxsparse.build.from_metadata`) and
restore it, so a population can be analysed without its training script,
in a fresh process; a method from the user's own module is loaded only with
the user's consent (``allow_modules``).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Iterable

import jax
import numpy as np
import orbax.checkpoint as ocp
import pandas as pd

from jaxsparse import build, engine, population, sharding
from jaxsparse import errors
from jaxsparse.errors import UserError
from jaxsparse.workdir import CHECKPOINT_DIR

CHECKSUM_FILE = "checksums.json"


def checkpoint_manager(workdir: str, max_to_keep: int = 0) -> ocp.CheckpointManager:
  """Orbax manager for ``workdir/checkpoints`` (``max_to_keep=0`` keeps every epoch)."""
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep or None, create=True)
  return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, CHECKPOINT_DIR)),
                               options=options, item_handlers=ocp.StandardCheckpointHandler())


def save_population(manager: ocp.CheckpointManager, epoch: int, state: engine.TrainState) -> None:
  """Saves the population state as checkpoint ``epoch`` and waits until it is complete."""
  manager.save(epoch, args=ocp.args.StandardSave(state))
  manager.wait_until_finished()
  digests = checksums(state)  # on every process: gathering a sharded state is collective
  if jax.process_index() == 0:
    path = os.path.join(str(manager.directory), str(epoch), CHECKSUM_FILE)
    with open(path + ".tmp", "w") as file:
      json.dump(digests, file, indent=0)
    os.replace(path + ".tmp", path)


def checksums(state: engine.TrainState) -> dict[str, str]:
  """SHA-256 of every array of a population state (its bytes, dtype and shape), by path."""
  host = sharding.to_host(state)
  return {path: _digest(np.asarray(leaf))
          for path, leaf in zip(checksums_paths(host), jax.tree.leaves(host))}


def checksums_paths(state: Any) -> list[str]:
  """The array paths :func:`checksums` names, from a state's structure alone."""
  return [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_leaves_with_path(state)]


def _saved_checksums(directory: str) -> dict[str, str] | None:
  """The checksums saved with a checkpoint by array path: None if it has none (written
  before they were), empty if the file is unreadable."""
  try:
    with open(os.path.join(directory, CHECKSUM_FILE)) as file:
      saved = json.load(file)
  except FileNotFoundError:
    return None
  except (OSError, ValueError):
    return {}
  return saved if isinstance(saved, dict) else {}


def _digest(array: np.ndarray) -> str:
  digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
  digest.update(np.ascontiguousarray(array).tobytes())
  return digest.hexdigest()


def _verify(manager: ocp.CheckpointManager, epoch: int, restored: engine.TrainState) -> None:
  """Compares a restored checkpoint with the checksums saved with it (if any)."""
  directory = os.path.join(str(manager.directory), str(epoch))
  saved = _saved_checksums(directory)
  if saved is None:
    return
  for path, digest in checksums(restored).items():
    if saved.get(path) != digest:
      earlier = [step for step in manager.all_steps() if step < epoch]
      fallback = (f"resume from epoch {max(earlier)}" if earlier else "start again")
      raise UserError(f"checkpoint {directory} is damaged ({path} does not match the checksum "
                      f"saved with it); move that directory away to {fallback}, or restore it "
                      "from a backup")


def restore_population(manager: ocp.CheckpointManager, abstract_state: engine.TrainState,
                       epoch: int | None = None) -> engine.TrainState:
  """Restores checkpoint ``epoch`` (latest if None) into the structure of ``abstract_state``.

  Raises:
    UserError: there is no such checkpoint, or it does not restore into
      ``abstract_state`` (damaged files, or written by another model,
      population size or method); the files are left as they are.
  """
  epoch = manager.latest_step() if epoch is None else epoch
  directory = os.path.join(str(manager.directory), str(epoch))
  if epoch is None or epoch not in manager.all_steps():
    raise UserError(f"no complete checkpoint {'' if epoch is None else epoch} under "
                    f"{manager.directory}; train the run first (or pick one of "
                    f"{list(manager.all_steps())})")
  try:
    restored = manager.restore(epoch, args=ocp.args.StandardRestore(abstract_state))
  except Exception as error:  # Orbax and TensorStore raise many kinds for one cause.
    saved = _saved_checksums(directory)
    if saved and set(saved) == set(checksums_paths(abstract_state)):
      # Written by this run's model and method (its checksums name the same arrays), yet
      # unreadable: its files are damaged, e.g. compressed bytes overwritten.
      raise UserError(
          f"checkpoint {directory} is damaged (its files cannot be restored: "
          f"{errors.summary(error)}). Move it away to resume from the epoch before, "
          "or restore it from a backup") from error
    raise UserError(
        f"checkpoint {directory} cannot be restored into this run's population "
        f"({errors.summary(error)}); it is damaged or was written by another model, "
        f"population size or method. Move it away to resume from the epoch before, or use "
        "another --workdir") from error
  _check_shapes(restored, abstract_state, directory)
  _verify(manager, epoch, restored)
  return restored


def saved_member_count(manager: ocp.CheckpointManager, epoch: int) -> int | None:
  """How many members (padding included) checkpoint ``epoch`` holds, from its metadata
  alone; None if that cannot be read."""
  try:
    shapes = [leaf.shape for leaf in jax.tree.leaves(manager.item_metadata(epoch))
              if getattr(leaf, "shape", None)]
  except Exception:  # unreadable metadata: restoring says what is wrong
    return None
  return shapes[0][0] if shapes else None


def check_member_count(manager: ocp.CheckpointManager, epoch: int, num_members: int) -> None:
  """Refuses a checkpoint that holds fewer members than the run's table (another
  population's checkpoints copied in); more may be padding (see :func:`restore_members`)."""
  saved = saved_member_count(manager, epoch)
  if saved is not None and saved < num_members:
    raise UserError(f"checkpoint {epoch} in {manager.directory} holds {saved} members, but this "
                    f"run's population size is {num_members}; use another --workdir")


def restore_members(manager: ocp.CheckpointManager, program: engine.Program,
                    table: pd.DataFrame, epoch: int | None = None,
                    size: int | None = None) -> engine.TrainState:
  """Restores the members of ``table`` from checkpoint ``epoch`` (latest if None) into
  the state ``program`` (its model and method) trains.

  A checkpoint may hold padding members after the real ones (written by a
  run sharded over a device count that does not divide the population; see
  :mod:`jaxsparse.sharding`). They are dropped, and the population is padded
  to ``size`` (default: the real members) and split over ``program.mesh`` for
  the run at hand, which may use another number of devices.
  """
  mesh = program.mesh
  epoch = manager.latest_step() if epoch is None else epoch
  num_members = len(table)
  saved = num_members
  if epoch is not None and epoch in manager.all_steps():
    saved = saved_member_count(manager, epoch) or num_members
  saved = max(saved, num_members)
  hyper = sharding.pad_members(population.member_hyperparameters(table), saved)
  abstract = jax.eval_shape(engine.init_population, program._replace(mesh=None), hyper)
  # Restore onto this run's devices, whatever the devices of the run that saved it.
  if mesh is not None and saved % sharding.num_shards(mesh) == 0:
    target = sharding.member_sharding(mesh)
  else:
    target = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  abstract = jax.tree.map(
      lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=target), abstract)
  state = restore_population(manager, abstract, epoch)
  if saved > num_members:
    # Padding members are copies of the last member, so their PRNG keys equal
    # its key; anything else is another population's checkpoint.
    keys = np.asarray(sharding.to_host(state.key))
    if not (keys[num_members:] == keys[num_members - 1]).all():
      raise UserError(f"checkpoint {epoch} in {manager.directory} holds {saved} members, but this "
                      f"run's population size is {num_members}; use another --workdir")
  size = size or num_members
  if saved == size:
    return state
  return sharding.shard_members(sharding.pad_members(sharding.unpad_members(state, num_members),
                                                     size), mesh)


def _check_shapes(restored: engine.TrainState, abstract_state: engine.TrainState,
                  directory: str) -> None:
  """Orbax may restore arrays of another shape without complaint; this does complain."""
  for (path, leaf), expected in zip(jax.tree_util.tree_leaves_with_path(restored),
                                    jax.tree.leaves(abstract_state)):
    if leaf.shape != expected.shape:
      raise UserError(
          f"checkpoint {directory} holds {jax.tree_util.keystr(path)} of shape {leaf.shape}, "
          f"but this run's population needs {expected.shape} (another model or population "
          "size); use another --workdir")


def load_population(workdir: str, epoch: int | None = None, *,
                    allow_modules: Iterable[str] = (), setup: build.Setup | None = None
                    ) -> tuple[engine.TrainState, pd.DataFrame]:
  """Loads a whole population from a run's workdir.

  Loading reads data and runs no code the run directory names: a method from
  a module that is not imported yet (not a built-in one) is loaded only if
  ``allow_modules`` names its module (docs/bad_inputs.md, the trust model).

  Args:
    workdir: the ``--workdir`` of a training run.
    epoch: which epoch's checkpoint (None: the latest).
    allow_modules: modules the run may import for its method, if you trust them.
    setup: the run's setup, when the caller made the run (a study loading the zoo it
      just trained): then its metadata is not read back.

  Returns:
    The population state (leaves with a leading member axis) and the member
    table (one row per member: hyperparameters and seed).
  """
  run = build.load_setup(workdir, allow_modules) if setup is None else setup._replace(
      program=setup.program._replace(mesh=None))
  manager = checkpoint_manager(workdir)
  try:
    return restore_members(manager, run.program, run.table, epoch), run.table
  finally:
    manager.close()


def load_member(workdir: str, member: int, epoch: int | None = None, *,
                allow_modules: Iterable[str] = ()) -> tuple[engine.TrainState, dict[str, Any]]:
  """Loads member ``member`` of a run: its state (no member axis) and its table row
  (``allow_modules``: see :func:`load_population`)."""
  state, table = load_population(workdir, epoch, allow_modules=allow_modules)
  if not 0 <= member < len(table):
    raise UserError(f"member {member} does not exist; the population has {len(table)} members")
  return engine.member(state, member), table.iloc[member].to_dict()

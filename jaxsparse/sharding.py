"""The population axis laid out over devices (and hosts).

Members never talk to each other, so a population shards perfectly: each
device trains, evaluates and checkpoints its own block of members, with the
data replicated. :func:`population_mesh` is a 1-D mesh over a ``population``
axis; the engine's compiled calls take it (``mesh=``) and run each device's
members with ``shard_map``, which is exactly the single-device program on
fewer members. A population whose size does not divide the device count is
padded with inert members (:func:`pad_members`): copies of the last member
whose results are dropped (:func:`unpad_members`) before anything is reported.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

PyTree = Any
POPULATION_AXIS = "population"


def population_mesh(num_devices: int = 0) -> Mesh | None:
  """A mesh over the first ``num_devices`` devices of all hosts (0: all), or None for one."""
  devices = jax.devices()
  if num_devices:
    if num_devices > len(devices):
      raise ValueError(f"{num_devices} devices asked for; {len(devices)} available")
    devices = devices[:num_devices]
  if len(devices) == 1:
    return None
  # Auto axes: outside shard_map (slicing off padding, gathering metrics) the
  # compiler places results itself.
  return jax.make_mesh((len(devices),), (POPULATION_AXIS,),
                       axis_types=(jax.sharding.AxisType.Auto,), devices=devices)


def num_shards(mesh: Mesh | None) -> int:
  """How many blocks the population axis is split into (1 without a mesh)."""
  return 1 if mesh is None else mesh.shape[POPULATION_AXIS]


def local_shards(mesh: Mesh | None) -> int:
  """How many of the population's blocks this process's devices hold (1 without a mesh)."""
  if mesh is None:
    return 1
  return sum(device.process_index == jax.process_index() for device in mesh.devices.flat)


def padded_size(num_members: int, mesh: Mesh | None) -> int:
  """The smallest multiple of the mesh's size that holds ``num_members``."""
  shards = num_shards(mesh)
  return -(-num_members // shards) * shards


def pad_members(tree: PyTree, size: int) -> PyTree:
  """Pads the member axis of every leaf to ``size`` with copies of the last member."""
  def pad(leaf):
    leaf = np.asarray(leaf) if not isinstance(leaf, jax.Array) else leaf
    missing = size - leaf.shape[0]
    if missing <= 0:
      return leaf
    return jnp.concatenate([leaf, jnp.repeat(leaf[-1:], missing, axis=0)])
  return jax.tree.map(pad, tree)


def unpad_members(tree: PyTree, num_members: int) -> PyTree:
  """The first ``num_members`` members of every leaf (drops the padding)."""
  return jax.tree.map(lambda leaf: leaf[:num_members], tree)


def member_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (member) axis split over the mesh; other axes whole."""
  return NamedSharding(mesh, PartitionSpec(POPULATION_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  """Every device holds the whole array (the data, scalars)."""
  return NamedSharding(mesh, PartitionSpec())


def _place(tree: PyTree, sharding: NamedSharding) -> PyTree:
  """``tree`` as global arrays with ``sharding``; every process passes the same values and
  keeps only its own devices' blocks (works on one host and on many)."""
  def place(leaf):
    if isinstance(leaf, jax.Array) and leaf.sharding == sharding:
      return leaf
    value = np.asarray(leaf)
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])
  return jax.tree.map(place, tree)


def shard_members(tree: PyTree, mesh: Mesh | None) -> PyTree:
  """Places a padded population pytree with its members split over ``mesh``."""
  if mesh is None:
    return tree
  return _place(tree, member_sharding(mesh))


def replicate(tree: PyTree, mesh: Mesh | None) -> PyTree:
  """Places ``tree`` (the data) whole on every device of ``mesh`` (or on the default device)."""
  if mesh is None:
    return jax.tree.map(jnp.asarray, tree)
  return _place(tree, replicated(mesh))


def is_writer() -> bool:
  """Whether this process writes a run's files (process 0 of a multi-host run; checkpoints
  are written by every process, each its own shards)."""
  return jax.process_index() == 0


def to_host(tree: PyTree) -> PyTree:
  """NumPy copies of a (possibly multi-host) population pytree, whole on every process."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  from jax.experimental import multihost_utils
  return multihost_utils.process_allgather(tree, tiled=True)


def over_members(function, mesh: Mesh | None, num_member_args: int):
  """``function(*member_args, *shared_args)`` run per device on its own block of members.

  The first ``num_member_args`` arguments have a leading member axis (split
  over the mesh); the rest are shared (replicated). Without a mesh, the
  function itself.
  """
  if mesh is None:
    return function

  def sharded(*args):
    specs = tuple(PartitionSpec(POPULATION_AXIS) if index < num_member_args else PartitionSpec()
                  for index in range(len(args)))
    # check_vma=False: members never communicate, so JAX's tracking of which
    # values vary across devices adds nothing (and rejects scans whose carry
    # starts as a constant).
    return jax.shard_map(function, mesh=mesh, in_specs=specs,
                         out_specs=PartitionSpec(POPULATION_AXIS), check_vma=False)(*args)
  return sharded

"""Populations: a hyperparameter grid expanded into members.

A zoo is declared as a grid (every combination of the listed values, times a
number of seeds). :func:`member_table` expands it into a table with one row
per member; :func:`member_hyperparameters` turns the table into the arrays the
compiled training program takes (one entry per member), so a population that
mixes optimizers, activations and learning rates is still one program.
"""

from __future__ import annotations

import itertools
from typing import Any, Mapping

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from jaxsparse.layers import ACTIVATIONS, GroupActivation
from jaxsparse.models import INITIALIZERS
from jaxsparse.optim import OPTIMIZERS, Recipe
from jaxsparse import sparsify

#: Grid fields that name a choice, with the allowed values (their index is what the program sees).
CATEGORICAL_FIELDS: dict[str, tuple[str, ...]] = {
    "activation": ACTIVATIONS,
    "initializer": INITIALIZERS,
    "optimizer": OPTIMIZERS,
}
#: Grid fields that are numbers.
NUMERIC_FIELDS: tuple[str, ...] = ("learning_rate", "weight_decay", "momentum", "dropout_rate",
                                   "sparsity")
#: Order of the grid's axes; the last one varies fastest, and seeds vary fastest of all.
GRID_FIELDS: tuple[str, ...] = ("sparsity", "activation", "dropout_rate", "initializer",
                                "optimizer", "learning_rate", "weight_decay", "momentum")


@flax.struct.dataclass
class MemberHyperparameters:
  """Per-member hyperparameters as arrays with a leading member axis.

  Categorical fields hold indices into :data:`CATEGORICAL_FIELDS`;
  ``sparsity`` is the member's target sparsity for the sparsification method
  and ``method_settings`` the values of the method settings the population
  sweeps (``config.population.method_grid``; see
  :func:`jaxsparse.sparsify.sweepable_settings`), by name; together they are the
  member's :attr:`target`. ``group_activation`` is None except inside the
  engine's vmapped groups of members (:meth:`in_group`).

  The last three fields are static (part of the compiled program's
  signature, not traced): the training recipe the members share (the
  schedule's shape, label smoothing, the weight-decay style; see
  :class:`jaxsparse.optim.Recipe`), which activations the population uses and
  whether any member uses dropout. Under ``vmap`` a per-member activation computes
  every branch and selects, and dropout draws random bits even at rate 0;
  knowing that a population uses one activation or no dropout lets the
  program skip that work (about 1.5x on the CPU for a CNN-s zoo) while
  giving the same numbers. A population that mixes activations skips it too
  in every vmapped group whose members share one (:meth:`in_group`).
  """
  seed: jax.Array
  activation: jax.Array
  initializer: jax.Array
  optimizer: jax.Array
  learning_rate: jax.Array
  weight_decay: jax.Array
  momentum: jax.Array
  dropout_rate: jax.Array
  sparsity: jax.Array
  method_settings: dict[str, jax.Array] = flax.struct.field(default_factory=dict)
  group_activation: jax.Array | None = None
  recipe: Recipe = flax.struct.field(pytree_node=False, default=Recipe())
  activations_used: tuple[int, ...] = flax.struct.field(
      pytree_node=False, default=tuple(range(len(ACTIVATIONS))))
  uses_dropout: bool = flax.struct.field(pytree_node=False, default=True)

  @property
  def target(self) -> sparsify.Target:
    """What the sparsification method aims for (see :class:`jaxsparse.sparsify.Target`)."""
    return sparsify.Target(self.sparsity, self.method_settings)

  @property
  def compiled_activation(self) -> jax.Array | int:
    """The activation index for the model: a Python int (one branch compiled)
    when every member uses the same activation, else the traced index."""
    if len(self.activations_used) == 1:
      return self.activations_used[0]
    if self.group_activation is None:
      return self.activation
    return GroupActivation(self.activation, self.group_activation)

  def in_group(self, activations: jax.Array) -> MemberHyperparameters:
    """This member's hyperparameters inside a group of members vmapped together whose
    activations are ``activations`` (unbatched): when they are all the same, the model
    computes that activation alone (:class:`jaxsparse.layers.GroupActivation`)."""
    shared = jnp.where(jnp.all(activations == activations[0]), activations[0], -1)
    return self.replace(group_activation=shared)

  def dropout_key(self, key: jax.Array) -> jax.Array | None:
    """``key`` for the model's dropout, or None (no dropout) when no member uses it."""
    return key if self.uses_dropout else None


def member_table(grid: Mapping[str, Any], num_seeds: int, first_seed: int = 0,
                 method_grid: Mapping[str, Any] | None = None,
                 members: Mapping[str, Any] | None = None) -> pd.DataFrame:
  """Expands a grid (or a list of members) into a table with one row per member.

  Args:
    grid: for each field of :data:`GRID_FIELDS`, a sequence of values
      (``sparsity`` may be left out: dense, 0).
    num_seeds: seeds per grid point; member seeds are ``first_seed + i``.
    first_seed: the first seed.
    method_grid: for method settings that differ between members (see
      :func:`jaxsparse.sparsify.sweepable_settings`), a sequence of values
      (an empty sequence or a missing field: not swept, every member uses
      ``config.sparsify``'s value). Their axes come right after sparsity's,
      in the order the methods declare them.
    members: the members listed one by one instead of a grid times seeds
      (``config.population.members``: a column per field, ``seed`` and any of
      :data:`GRID_FIELDS` but ``sparsity``; a field without a column takes its
      grid value, which must then be single). An imported zoo lists its
      members this way. Sparsity and the swept method settings still make
      axes: every listed member appears once per combination of them.
      ``num_seeds`` and ``first_seed`` are not read. None or an empty ``seed``
      column: the grid.

  Returns:
    A DataFrame with columns ``member``, ``configuration`` (index of the grid
    point; for listed members, of the distinct hyperparameters), ``seed``,
    one column per grid field (categorical fields hold their names) and one
    per swept method field.
  """
  method_grid = method_grid or {}
  order = sparsify.sweepable_settings()
  swept = sorted((field for field, values in method_grid.items() if len(values) > 0),
                 key=lambda field: order.index(field) if field in order else len(order))
  axis = lambda field: (tuple(method_grid[field]) if field in swept else
                        tuple(grid[field]) if field in grid else (0.0,))
  levels = (GRID_FIELDS[0], *swept)
  if members is not None and len(members.get("seed", ())):
    table = _listed_members(levels, [axis(field) for field in levels], grid, members)
  else:
    table = _grid_members((*levels, *GRID_FIELDS[1:]),
                          [axis(field) for field in (*levels, *GRID_FIELDS[1:])],
                          num_seeds, first_seed)
  for field in (*NUMERIC_FIELDS, *swept):
    table[field] = table[field].astype(float)
  return table


def _grid_members(fields, axes, num_seeds: int, first_seed: int) -> pd.DataFrame:
  """Every combination of the axes' values (a configuration), times the seeds."""
  rows = []
  for configuration, values in enumerate(itertools.product(*axes)):
    for seed in range(first_seed, first_seed + num_seeds):
      row = {"member": len(rows), "configuration": configuration, "seed": seed}
      row.update(zip(fields, values))
      rows.append(row)
  return pd.DataFrame(rows)


def _listed_members(levels, level_axes, grid: Mapping[str, Any],
                    members: Mapping[str, Any]) -> pd.DataFrame:
  """The listed members, once per combination of the level axes (level-major)."""
  count = len(members["seed"])
  columns = {field: tuple(members[field]) if len(members.get(field, ())) else
             tuple(grid.get(field, (0.0,))) * count for field in GRID_FIELDS[1:]}
  rows, configurations = [], {}
  for level_values in itertools.product(*level_axes):
    for index in range(count):
      values = {**dict(zip(levels, level_values)),
                **{field: column[index] for field, column in columns.items()}}
      key = tuple(values.values())
      configuration = configurations.setdefault(key, len(configurations))
      rows.append({"member": len(rows), "configuration": configuration,
                   "seed": int(members["seed"][index]), **values})
  return pd.DataFrame(rows)


def with_copies(table: pd.DataFrame, copies: int) -> pd.DataFrame:
  """Every member repeated ``copies`` times, consecutively, with a ``copy`` column.

  Copies share the seed and hyperparameters (so they start identical); the
  ``member`` column is renumbered.
  """
  repeated = table.loc[table.index.repeat(copies)].reset_index(drop=True)
  repeated.insert(1, "copy", [i % copies for i in range(len(repeated))])
  repeated["member"] = range(len(repeated))
  return repeated


def member_hyperparameters(table: pd.DataFrame, recipe: Recipe = Recipe()
                          ) -> MemberHyperparameters:
  """The arrays of a member table, ready for the compiled program, with the members'
  shared ``recipe``."""
  def index_of(field):
    choices = CATEGORICAL_FIELDS[field]
    return jnp.asarray([choices.index(value) for value in table[field]], jnp.int32)

  return MemberHyperparameters(
      seed=jnp.asarray(table["seed"].to_numpy(), jnp.int32),
      activation=index_of("activation"),
      initializer=index_of("initializer"),
      optimizer=index_of("optimizer"),
      **{field: jnp.asarray(table[field].to_numpy(np.float32)) for field in NUMERIC_FIELDS},
      method_settings={field: jnp.asarray(table[field].to_numpy(np.float32))
                       for field in sparsify.sweepable_settings() if field in table},
      recipe=recipe,
      activations_used=tuple(sorted({ACTIVATIONS.index(name) for name in table["activation"]})),
      uses_dropout=bool((table["dropout_rate"] > 0).any()))

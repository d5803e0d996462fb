"""One setup for every run: config + data -> model, method, member table, hyperparameters, mesh.

Training, resuming, loading a run, the twins study, the experiments and the
tests all build what a population needs with :func:`setup` (or
:func:`from_metadata` for a run on disk), so they cannot drift apart.
"""

from __future__ import annotations

import json
import math
from typing import Any, NamedTuple

import jax
import ml_collections
import pandas as pd

from jaxsparse import masks, models, population, sharding, sparsify
from jaxsparse.config import completed_config, recipe
from jaxsparse.data import Dataset
from jaxsparse.errors import UserError


class DataShape(NamedTuple):
  """What a population's setup needs to know about its data.

  Attributes:
    input_shape: one example's shape, e.g. (28, 28, 1).
    num_classes: number of labels.
    num_train: training examples per epoch; None when unknown (a run loaded
      for evaluation: the method's schedule then counts one step per epoch,
      which changes nothing that evaluation or restoring reads).
  """
  input_shape: tuple[int, ...]
  num_classes: int = 10
  num_train: int | None = None


def data_shape(dataset: Dataset) -> DataShape:
  """The :class:`DataShape` of a loaded dataset."""
  return DataShape(tuple(dataset.input_shape), dataset.num_classes, len(dataset.train_labels))


class Experiment(NamedTuple):
  """Everything a population's compiled programs take besides its state and data.

  Attributes:
    config: the completed config (every field present).
    model: the architecture.
    method: the sparsification method, built from ``config.sparsify``.
    declaration: the method's declaration (see :mod:`jaxsparse.sparsify.registry`).
    table: the member table, one row per member (method copies included).
    hyper: per-member hyperparameters; with a mesh, padded to a multiple of
      the device count and split over the devices.
    mesh: the devices the members are split over (None: one device).
    steps_per_epoch: optimizer steps per epoch (0 when the data are unknown).
  """
  config: ml_collections.ConfigDict
  model: models.Model
  method: sparsify.SparsifyMethod
  declaration: sparsify.MethodDeclaration
  table: pd.DataFrame
  hyper: population.MemberHyperparameters
  mesh: Any
  steps_per_epoch: int

  @property
  def num_members(self) -> int:
    """Members of the population (padding excluded)."""
    return len(self.table)

  @property
  def padded_size(self) -> int:
    """Members including the padding that fills the last device."""
    return int(self.hyper.seed.shape[0])


def member_table(config: ml_collections.ConfigDict,
                 declaration: sparsify.MethodDeclaration) -> pd.DataFrame:
  """The member table of ``config``: its grid (or listed members) and method grid, times its
  seeds."""
  sweeps = {field: tuple(config.population.method_grid.get(field, ()))
            for field in declaration.member_settings}
  return population.member_table(config.population.grid, config.population.num_seeds,
                                 config.population.first_seed, sweeps,
                                 config.population.members)


def setup(config: ml_collections.ConfigDict, data: DataShape, *,
          table: pd.DataFrame | None = None, sharded: bool = False) -> Experiment:
  """Builds a population's model, method, member table and hyperparameters from ``config``.

  Args:
    config: a config (fields it leaves out take their defaults).
    data: the data's shape, class count and training-set size.
    table: the member table, if known (a run on disk); otherwise expanded
      from the config's grid.
    sharded: split the members over ``config.population.num_devices``
      devices (padding the population to a multiple of them); otherwise
      everything stays on the default device.
  """
  config = completed_config(config)
  declaration = sparsify.declaration(config.sparsify.method)
  model = models.get_model(config.model.name, tuple(data.input_shape), data.num_classes,
                           config.model.conv_implementation, config.model.width,
                           config.model.padding)
  num_epochs = config.training.num_epochs
  shapes = _parameter_shapes(model, config)
  layers = models.layer_order(model) if declaration.uses_layer_order else ()
  if data.num_train is None:
    steps_per_epoch, schedule = 0, sparsify.TrainingSchedule(1, layer_order=layers)
  else:
    steps_per_epoch = data.num_train // config.training.batch_size
    schedule = sparsify.TrainingSchedule(steps_per_epoch, num_examples=data.num_train,
                                         num_steps=num_epochs * steps_per_epoch,
                                         layer_order=layers)
  method = sparsify.get_method(config.sparsify, schedule)
  if table is None:
    table = member_table(config, declaration)
    if method.copies > 1:
      table = population.with_copies(table, method.copies)
  if declaration.uses_target_sparsity:
    _check_targets(model, shapes, table)
  hyper = population.member_hyperparameters(table, recipe(config, steps_per_epoch))
  mesh = None
  if sharded:
    mesh = sharding.population_mesh(config.population.num_devices)
    hyper = sharding.shard_members(
        sharding.pad_members(hyper, sharding.padded_size(len(table), mesh)), mesh)
  return Experiment(config, model, method, declaration, table, hyper, mesh, steps_per_epoch)


def _parameter_shapes(model: models.Model, config: ml_collections.ConfigDict) -> Any:
  """The shapes of the model's parameters (traced, not computed), or one line saying that
  the model does not fit the images (a CNN that pools 8x8 digits down to nothing)."""
  try:
    return jax.eval_shape(lambda key: models.init_variables(model, key),
                          jax.random.PRNGKey(0))["params"]
  except Exception as error:  # a shape error surfaces as one of several kinds
    height, width, channels = model.input_shape
    raise UserError(
        f"config.model.name={model.name!r} does not fit the {height}x{width}x{channels} images "
        f"of config.data.name={config.data.name!r} ({type(error).__name__}: its layers shrink "
        "them to nothing); resize them with config.data.image_size (e.g. 28) or use a model "
        "for small images such as 'lenet_300_100'") from error


def _check_targets(model: models.Model, shapes: Any, table: pd.DataFrame) -> None:
  """Every target sparsity leaves at least one weight in the model's smallest prunable layer
  (a target of 0.9999 would otherwise prune whole layers, and the members predict a
  constant)."""
  sizes = {jax.tree_util.keystr(path): leaf.size
           for path, leaf in jax.tree_util.tree_leaves_with_path(shapes)
           if masks.is_prunable(path, leaf)}
  if not sizes:
    return
  layer = min(sizes, key=sizes.get)
  smallest = sizes[layer]
  for target in sorted(set(table["sparsity"]), reverse=True):
    if round(target * smallest) >= smallest:
      most = math.floor((1 - 1 / smallest) * 1000) / 1000
      raise UserError(f"config.population.grid.sparsity={target!r} is invalid: it prunes every "
                      f"weight of {model.name}'s smallest layer ({layer}, {smallest} weights); "
                      f"use at most {most:g}")


def from_metadata(metadata: dict[str, Any], path: str = "metadata.json") -> Experiment:
  """The setup of a run on disk, from its ``metadata.json`` (for loading and evaluating it).

  The method's module is imported first (a method from a user's module
  registers itself on import). Fields added to the config schema after the
  run was made take their defaults.
  """
  module = metadata.get("method_module")
  if module:
    try:
      sparsify.import_method_module(module, metadata["config"]["sparsify"]["method"])
    except UserError as error:
      raise UserError(f"the run's method cannot be loaded: {error}") from error
  config = ml_collections.ConfigDict(metadata["config"])
  data = DataShape(tuple(metadata["input_shape"]), metadata["num_classes"])
  run = setup(config, data)
  _check_member_table(metadata["members"], run.table, path)
  return run


def _check_member_table(saved: list, expected: pd.DataFrame, path: str) -> None:
  """A member table in ``metadata.json`` must be the one its config expands to: a table
  edited by hand (another learning rate, fewer members, a value's type) is not trusted."""
  expected_rows = json.loads(expected.to_json(orient="records"))
  if not isinstance(saved, list) or len(saved) != len(expected_rows):
    count = len(saved) if isinstance(saved, list) else type(saved).__name__
    raise UserError(f"{path} lists {count} members, but its config makes "
                    f"{len(expected_rows)}; it was edited, so the run cannot be trusted: restore "
                    "it, or run the training command again to rewrite it")
  for index, (row, expected_row) in enumerate(zip(saved, expected_rows)):
    for field, value in expected_row.items():
      if not isinstance(row, dict) or not _same_value(row.get(field), value):
        found = row.get(field) if isinstance(row, dict) else row
        raise UserError(f"{path} gives member {index} {field}={found!r}, but its config "
                        f"makes {value!r}; it was edited, so the run cannot be trusted: "
                        "restore it, or run the training command again to rewrite it")


def _same_value(saved: Any, expected: Any) -> bool:
  """Equal, with JSON's number types (an integer stored as 3.0 is 3; a bool is no number;
  pandas' missing value is NaN in metadata.json and null in ``to_json``)."""
  if expected is None:
    return saved is None or (isinstance(saved, float) and math.isnan(saved))
  if isinstance(expected, bool) or isinstance(saved, bool):
    return saved is expected
  if isinstance(expected, (int, float)) and isinstance(saved, (int, float)):
    return float(saved) == float(expected)
  return saved == expected

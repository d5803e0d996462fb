"""One setup for every run: config + data -> the engine's program, member table, hyperparameters.

Training, resuming, loading a run, the twins study, the experiments and the
tests all build what a population needs with :func:`setup` (or
:func:`from_metadata` / :func:`load_setup` for a run on disk), so they
cannot drift apart.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Iterable, NamedTuple

import jax
import ml_collections
import pandas as pd

from jaxsparse import engine, masks, models, population, sharding, sparsify
from jaxsparse import workdir as workdir_lib
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


class Setup(NamedTuple):
  """Everything a population's compiled programs take besides its state and data.

  Attributes:
    config: the completed config (every field present).
    program: the engine's static record (:class:`jaxsparse.engine.Program`): the
      model, the method built from ``config.sparsify``, batch sizes, chunking, mesh.
    declaration: the method's declaration (see :mod:`jaxsparse.sparsify.registry`).
    table: the member table, one row per member (method copies included).
    hyper: per-member hyperparameters; with a mesh, padded to a multiple of
      the device count and split over the devices.
    steps_per_epoch: optimizer steps per epoch (0 when the data are unknown).
  """
  config: ml_collections.ConfigDict
  program: engine.Program
  declaration: sparsify.MethodDeclaration
  table: pd.DataFrame
  hyper: population.MemberHyperparameters
  steps_per_epoch: int

  @property
  def model(self) -> models.Model:
    """The architecture."""
    return self.program.model

  @property
  def method(self) -> sparsify.SparsifyMethod:
    """The sparsification method."""
    return self.program.method

  @property
  def mesh(self) -> Any:
    """The devices the members are split over (None: one device)."""
    return self.program.mesh

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


def config_member_table(config: ml_collections.ConfigDict) -> pd.DataFrame:
  """The members a (completed) config makes, its method's copies included, without data or
  a model: what a run of it lists in ``metadata.json``."""
  declaration = sparsify.declaration(config.sparsify.method)
  table = member_table(config, declaration)
  copies = sparsify.get_method(config.sparsify, sparsify.TrainingSchedule(1)).copies
  return population.with_copies(table, copies) if copies > 1 else table


def setup(config: ml_collections.ConfigDict, data: DataShape, *,
          table: pd.DataFrame | None = None, sharded: bool = False) -> Setup:
  """Builds a population's model, method, member table and hyperparameters from ``config``.

  Args:
    config: a resolved config (:func:`jaxsparse.config.resolve`: every field present).
    data: the data's shape, class count and training-set size.
    table: the member table, if known (a run on disk); otherwise expanded
      from the config's grid.
    sharded: split the members over ``config.population.num_devices``
      devices (padding the population to a multiple of them); otherwise
      everything stays on the default device.
  """
  declaration = sparsify.declaration(config.sparsify.method)
  model = config_model(config, data)
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
  training = config.training
  program = engine.Program(model, method, training.batch_size, training.eval_batch_size,
                           config.population.chunk_size, mesh, training.shared_order_seed)
  return Setup(config, program, declaration, table, hyper, steps_per_epoch)


def config_model(config: ml_collections.ConfigDict, data: DataShape) -> models.Model:
  """The model ``config.model`` names, for data of shape ``data``."""
  return models.get_model(config.model.name, tuple(data.input_shape), data.num_classes,
                          config.model.conv_implementation, config.model.width,
                          config.model.padding)


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


def recorded_method_modules(metadata: dict[str, Any]) -> dict[str, str]:
  """Every module a run's metadata names as a method's (module -> method): its
  ``method_module`` and the ``module:`` of ``'module:name'`` methods in its config."""
  config = metadata.get("config", {})
  methods = [config.get("sparsify", {}).get("method", "")]
  methods += list(config.get("twins", {}).get("methods", ()))
  modules = {method.split(":", 1)[0]: method for method in methods
             if isinstance(method, str) and ":" in method}
  module = metadata.get("method_module")
  if module is not None:
    modules.setdefault(module, methods[0])
  return modules


def import_recorded_methods(metadata: dict[str, Any], path: str,
                            allow_modules: Iterable[str] = ()) -> None:
  """Makes the methods a run's ``metadata.json`` (at ``path``) names available: modules
  that are already imported (built-in methods, the user's own) as they are; any other
  only if ``allow_modules`` (or :func:`jaxsparse.sparsify.allowing_modules`) allows it,
  and never from the run's directory. See
  :func:`jaxsparse.sparsify.import_recorded_module` and docs/bad_inputs.md."""
  for module, method in recorded_method_modules(metadata).items():
    sparsify.import_recorded_module(module, method, path, allow_modules,
                                    run_dir=os.path.dirname(os.path.abspath(path)))


def from_metadata(metadata: dict[str, Any], path: str,
                  allow_modules: Iterable[str] = ()) -> Setup:
  """The setup of a run on disk, from its ``metadata.json`` (at ``path``; for loading and
  evaluating it).

  The method's module is imported only with consent (see
  :func:`import_recorded_methods`). Fields added to the config schema after
  the run was made take their defaults. A member table that is not the one
  the run's config makes (edited by hand) is refused.
  """
  import_recorded_methods(metadata, path, allow_modules)
  # (a run made before a field existed lacks it: the field takes its default)
  config = completed_config(ml_collections.ConfigDict(metadata["config"]))
  data = DataShape(tuple(metadata["input_shape"]), metadata["num_classes"])
  run = setup(config, data)
  difference = workdir_lib.member_difference(metadata["members"], member_records(run.table))
  if difference is not None:
    raise UserError(f"{path} {difference}; {workdir_lib.EDITED_MEMBERS_FIX}")
  return run


def load_setup(run_dir: str, allow_modules: Iterable[str] = ()) -> Setup:
  """:func:`from_metadata` of the run in ``run_dir``."""
  return from_metadata(workdir_lib.read_metadata(run_dir),
                       os.path.join(run_dir, workdir_lib.METADATA_FILE), allow_modules)


def member_records(table: pd.DataFrame) -> list[dict[str, Any]]:
  """A member table as the JSON records ``metadata.json`` lists."""
  return json.loads(table.to_json(orient="records"))

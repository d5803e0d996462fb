"""The config schema (every field declared with its default, doc and check) and validation.

Config files in ``configs/`` start from :func:`default_config` and change what
they need; :func:`resolve` (at a command's door) rejects anything else before
a run starts, with one line that names the field, the value and what is
allowed. The core fields are the :data:`SCHEMA` table, grouped by section
(:class:`jaxsparse.schema.Field`); the fields of ``config.sparsify`` and the
level lists of ``config.twins`` come from the methods' declarations
(:mod:`jaxsparse.sparsify.registry`), and ``population.method_grid`` from
the settings they sweep per member. What relates several fields is checked
by :func:`_check_relations`. docs/configuration.md's field reference is
generated from these declarations (:func:`describe_fields`).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import ml_collections

from jaxsparse import data, layers, optim, sparsify
from jaxsparse.errors import UserError, invalid_field
from jaxsparse.models import MODEL_NAMES, PADDING_MODELS, PADDINGS, WIDTH_MODELS
from jaxsparse.population import CATEGORICAL_FIELDS, GRID_FIELDS
from jaxsparse.schema import (Field, boolean, finite, is_number, is_whole, one_of, positive,
                              text, values, whole_at_least, within)

#: Columns of ``config.population.members``: a seed and every grid field but sparsity.
MEMBER_FIELDS: tuple[str, ...] = ("seed", *GRID_FIELDS[1:])
#: What ``python -m jaxsparse.main`` does with a config (``config.job``).
JOBS = ("train", "twins")
#: How ``config.distributed`` starts several processes.
DISTRIBUTED_MODES = ("off", "auto", "address")
#: How a run shows its progress (``config.logging.progress``).
PROGRESS_MODES = ("auto", "bar", "lines", "none")
#: Seeds a member can have: jaxsparse keys its PRNG with a 32-bit signed integer.
MAX_SEED = 2**31 - 1


def _seed(value, config) -> str | None:
  del config
  return None if is_whole(value) and 0 <= value <= MAX_SEED else \
      f"use whole numbers from 0 to {MAX_SEED}"


def _learning_rate(value, config) -> str | None:
  del config
  if not is_number(value):
    return "use finite numbers"
  return None if value > 0 else "learning rates must be > 0"


def _weight_decay(value, config) -> str | None:
  del config
  if not is_number(value):
    return "use finite numbers"
  return None if value >= 0 else "weight decay must be >= 0"


_FRACTION = within(0, 1, "use a value in [0, 1)")
_NUMBERS = "use finite numbers"
#: Each grid field's check of one value (a member's), shared by ``population.members``.
MEMBER_VALUE_CHECKS = {
    "seed": _seed,
    "sparsity": lambda v, c: None if is_number(v) and 0 <= v < 1 else (
        _NUMBERS if not is_number(v) else "use a value in [0, 1)"),
    "activation": one_of(CATEGORICAL_FIELDS["activation"]),
    "dropout_rate": lambda v, c: None if is_number(v) and 0 <= v < 1 else (
        _NUMBERS if not is_number(v) else "use a value in [0, 1)"),
    "initializer": one_of(CATEGORICAL_FIELDS["initializer"]),
    "optimizer": one_of(CATEGORICAL_FIELDS["optimizer"]),
    "learning_rate": _learning_rate,
    "weight_decay": _weight_decay,
    "momentum": lambda v, c: None if is_number(v) and 0 <= v < 1 else (
        _NUMBERS if not is_number(v) else "use a value in [0, 1)"),
}
_GRID_DOCS = {
    "sparsity": "each member's target sparsity for the method (one population can hold "
                "several levels)",
    "activation": f"the nonlinearity: {', '.join(CATEGORICAL_FIELDS['activation'])}",
    "dropout_rate": "dropout after each hidden layer (the zoos' 0 or 0.5)",
    "initializer": "the zoo's uniform U(0, 1), normal N(0, 1), kaiming_uniform, kaiming_normal "
                   "(PyTorch's defaults), fan_in_uniform, fan_in_normal, xavier_uniform, "
                   "xavier_normal; biases start at 0.01",
    "optimizer": "adam or sgd (with population.grid.momentum)",
    "learning_rate": "the member's peak learning rate",
    "weight_decay": "coupled L2 on the weights (never a method's own variables)",
    "momentum": "the SGD members' momentum",
}
_GRID_DEFAULTS = {"sparsity": (0.0,), "activation": ("tanh",), "dropout_rate": (0.0,),
                  "initializer": ("kaiming_uniform",), "optimizer": ("adam",),
                  "learning_rate": (1e-3,), "weight_decay": (0.0,), "momentum": (0.9,)}


def _epochs_within_training(value, config) -> str | None:
  if not is_number(value) or not 0 <= value < config.training.num_epochs:
    return f"use a number of epochs in [0, training.num_epochs={config.training.num_epochs})"
  return None


def _decay_epochs(value, config) -> str | None:
  if not isinstance(value, (tuple, list)):
    return f"list the epochs, e.g. ({value!r},)"
  for epoch in value:
    if not is_number(epoch) or not 0 < epoch < config.training.num_epochs:
      return f"use epochs in (0, training.num_epochs={config.training.num_epochs})"
  if list(value) != sorted(set(value)):
    return "list distinct epochs in increasing order"
  return None


#: The core fields, by section (nested groups are dicts). ``sparsify``'s fields, the twins'
#: level lists and ``population.method_grid`` are added from the methods' declarations.
SCHEMA: dict[str, Any] = {
    "job": Field("train", "'train' trains the zoo; 'twins' runs the sparsified-twins study "
                 "(config.twins)", one_of(JOBS)),
    "model": {
        "name": Field("cnn_s", "the architecture", one_of(MODEL_NAMES)),
        "width": Field(1.0, "channel multiplier of the models whose width scales (ThinResNet)",
                       positive("use a positive multiplier, e.g. 0.5")),
        "conv_implementation": Field(
            "auto", "'auto' (on the CPU im2col patches or a banded matmul per layer, XLA's "
            "convolution elsewhere), 'im2col', 'banded' or 'xla'",
            one_of(layers.CONV_IMPLEMENTATIONS)),
        "padding": Field("same", "ResNets: 'same' (XLA's: a stride-2 conv pads bottom/right "
                         "only) or 'symmetric' (PyTorch's padding=1, for weights trained there)",
                         one_of(PADDINGS)),
    },
    "data": {
        "name": Field("fashion_mnist", "a TFDS name, 'digits' (scikit-learn) or 'tiny_imagenet' "
                      "(a local copy: local_dir)",
                      one_of(data.SUPPORTED_DATASETS)),
        "tfds_data_dir": Field("", "TFDS's data directory ('': $TFDS_DATA_DIR or "
                               "~/tensorflow_datasets)", text),
        "validation_size": Field(10_000, "examples held out of the training split",
                                 whole_at_least(1, "use at least 1")),
        "split_seed": Field(0, "seed of that split (the same for every member)",
                            whole_at_least(0, "use a whole number >= 0")),
        "mean": Field(0.5, "normalisation of [0, 1] pixels: mean", finite("use a finite number")),
        "std": Field(0.5, "... and standard deviation",
                     lambda v, c: None if is_number(v) and v > 0 else (
                         "use a finite number" if not is_number(v) else "use a positive number")),
        "channel_mean": Field((), "per-channel means, one per channel ((): mean for all)",
                              values(finite("use finite numbers"), "", distinct=False)),
        "channel_std": Field((), "per-channel standard deviations ((): std for all)",
                             values(positive("use positive numbers"), "", distinct=False)),
        "local_dir": Field("", "'tiny_imagenet': the tiny-imagenet-200 directory of the "
                           "official archive (TFDS lacks it)", text),
        "image_size": Field(0, "> 0: resize images to image_size x image_size",
                            whole_at_least(0, "use 0 (off) or a positive number")),
        "train_examples": Field(0, "> 0: use only this many training examples",
                                whole_at_least(0, "use 0 (off) or a positive number")),
    },
    "population": {
        "num_seeds": Field(1, "members per grid point (their seeds first_seed, first_seed + 1, "
                           "...)", whole_at_least(1, "the population would have 0 members; use "
                                                  "1 or more")),
        "first_seed": Field(0, "the first seed", _seed),
        "chunk_size": Field(0, "members vmapped at once per device (0: all); a chunk whose "
                            "members share their activation computes only that one",
                            whole_at_least(0, "use 0 (all at once) or more")),
        "num_devices": Field(0, "devices the members are split over (0: all)",
                             whole_at_least(0, "use 0 (every device) or a device count")),
        "grid": {field: Field(_GRID_DEFAULTS[field], _GRID_DOCS[field], values(
            MEMBER_VALUE_CHECKS[field], "the population would have 0 members", nonempty=True))
                 for field in GRID_FIELDS},
        "members": {field: Field((), f"{field} of each listed member, one per member (() takes "
                                 "the grid's one value); lists the members one by one instead "
                                 "of grid x seeds, as an imported zoo does",
                                 values(MEMBER_VALUE_CHECKS[field], "", distinct=False))
                    for field in MEMBER_FIELDS},
    },
    "training": {
        "num_epochs": Field(3, "epochs of training", whole_at_least(1, "use 1 or more")),
        "batch_size": Field(32, "examples per step per member", whole_at_least(1, "use 1 or more")),
        "eval_batch_size": Field(1000, "examples per evaluation batch (at most a split's size)",
                                 whole_at_least(1, "use 1 or more")),
        "evaluate_validation": Field(True, "evaluate the validation split (twins skip it)",
                                     boolean),
        "evaluate_every": Field(1, "evaluate every this many epochs, and after the last",
                                whole_at_least(1, "use a whole number of epochs, 1 or more (1: "
                                               "every epoch)")),
        "evaluate_at_start": Field(False, "evaluate before the first epoch too (logged as epoch "
                                   "0)", boolean),
        "curve_test_examples": Field(
            0, "> 0: epochs before the last (and after epoch 0) evaluate only this many test "
            "examples, logged as curve_accuracy; the last evaluates the whole test set",
            whole_at_least(0, "use 0 (the whole test set every epoch) or a positive number")),
        "shared_order_seed": Field(
            -1, ">= 0: every member trains on the same batches, drawn from this seed (the "
            "first layer's work is done once for the population); -1: each its own order",
            whole_at_least(-1, "use -1 (each member its own data order) or a seed >= 0 (one "
                           "order for all)")),
        "lr_schedule": Field("constant", "'constant', 'warmup_cosine' (linear warm-up, cosine "
                             "decay to final_lr_fraction) or 'step' (x lr_decay_factor at "
                             "lr_decay_epochs)", one_of(optim.SCHEDULES)),
        "warmup_epochs": Field(0.0, "'warmup_cosine': epochs of linear warm-up from 0",
                               _epochs_within_training),
        "final_lr_fraction": Field(0.0, "'warmup_cosine': final rate / peak rate",
                                   within(0, 1, "use a value in [0, 1]", closed=True)),
        "lr_decay_epochs": Field((), "'step': epochs at which the rate is multiplied",
                                 _decay_epochs),
        "lr_decay_factor": Field(0.1, "'step': by this factor",
                                 lambda v, c: None if is_number(v) and 0 < v <= 1 else
                                 "use a factor in (0, 1]"),
        "label_smoothing": Field(0.0, "targets mix the one-hot label with the uniform "
                                 "distribution by this much", _FRACTION),
        "weight_decay_style": Field("coupled", "'coupled' (L2 in the gradient, the zoos') or "
                                    "'decoupled' (AdamW)", one_of(optim.WEIGHT_DECAY_STYLES)),
        "decay_biases_and_norms": Field(True, "False: weight decay reaches kernels only", boolean),
        "nesterov": Field(False, "Nesterov momentum for the SGD members", boolean),
    },
    "checkpoint": {
        "max_to_keep": Field(0, "checkpoints kept (0: every epoch's, as the zoos)",
                             whole_at_least(0, "use 0 (keep all) or more")),
    },
    "logging": {
        "progress": Field("auto", "'bar' (a progress bar), 'lines' (timestamped lines, for "
                          "batch jobs), 'none', or 'auto' (the bar on a terminal, else lines)",
                          one_of(PROGRESS_MODES)),
        "lines_every_seconds": Field(60.0, "'lines': a line of steps, speed and ETA at most "
                                     "this often inside an epoch (an epoch's end always "
                                     "writes one)", positive("use a positive number of "
                                                             "seconds")),
        "tensorboard": Field(True, "write TensorBoard event files", boolean),
    },
    "distributed": {
        "mode": Field("off", "several hosts: 'auto' (a TPU pod slice or a SLURM job), 'address' "
                      "(the fields below or $JAX_COORDINATOR_ADDRESS, ...) or 'off'",
                      one_of(DISTRIBUTED_MODES)),
        "coordinator_address": Field("", "host:port of process 0", text),
        "num_processes": Field(0, "processes (0: from the environment)",
                               whole_at_least(0, "use 0 or more")),
        "process_id": Field(-1, "this process (-1: from the environment)",
                            whole_at_least(-1, "use -1 or more")),
    },
}
#: The twins study's own fields (``config.twins``); its level lists come from the methods.
TWINS_SCHEMA: dict[str, Field] = {
    "methods": Field((), "methods to derive twins with (each makes one population per scope, "
                     "all its levels in it)", values(lambda v, c: None, "")),
    "scopes": Field(("layerwise",), "scopes of a method with a scope field (magnitude): one "
                    "population per scope", values(
                        lambda v, c: sparsify.config_fields()["scope"].check(v, c),
                        "e.g. ('layerwise',)", nonempty=True)),
    "num_epochs": Field(1, "fine-tuning epochs of every twin", whole_at_least(1, "use 1 or more")),
    "train_examples": Field(0, "fine-tuning examples (0: the whole training split)",
                            whole_at_least(0, "use 0 (all) or a positive number")),
    "evaluate_every": Field(1, "evaluate the twins every this many epochs (and after the last; "
                            "test accuracy, sparsity and agreement with the original are "
                            "logged)", whole_at_least(1, "use a whole number of epochs, 1 or "
                                                      "more (1: every epoch)")),
    "evaluate_at_start": Field(False, "evaluate the twins right after sparsification, before "
                               "fine-tuning (epoch 0: e.g. magnitude pruning alone)", boolean),
    "original_workdir": Field("", "a zoo trained elsewhere (e.g. imported): the twins start "
                              "from it, with its model, data, members and recipe ('': train "
                              "the zoo)", text),
}


def _level_fields() -> dict[str, Field]:
  """The twins' level lists, one per kind of level the registered methods declare."""
  fields = {}
  for levels_field, level in sparsify.twin_levels().items():
    each = (lambda v, c: None if is_number(v) and 0 <= v < 1 else "use values in [0, 1)") \
        if level.setting == "sparsity" else _method_value_check(level.setting)
    fields[levels_field] = Field(level.default_levels, f"levels of the methods whose level is "
                                 f"the {level.label} ({level.setting})",
                                 values(each, ""))
  return fields


def _method_value_check(field: str):
  check = sparsify.config_fields()[field].check

  def each(value, config):
    if not is_number(value):
      return "use finite numbers"
    return check(value, config) if check else None
  return each


def schema() -> dict[str, Any]:
  """Every field: the core :data:`SCHEMA`, ``config.sparsify`` (``method`` and every
  registered method's fields), ``population.method_grid`` and ``config.twins`` (its own
  fields and the methods' level lists)."""
  fields = {section: dict(group) if isinstance(group, dict) else group
            for section, group in SCHEMA.items()}
  fields["population"] = dict(SCHEMA["population"])
  fields["population"]["method_grid"] = {
      name: Field((), f"per-member values of config.sparsify.{name} (a grid axis; (): every "
                  "member takes config.sparsify's)", None)
      for name in sparsify.sweepable_settings()}
  fields["sparsify"] = {"method": Field(sparsify.DENSE, "the sparsification method: a "
                                        "registered name, or 'module:name' for your own",
                                        None)}
  fields["sparsify"].update(sparsify.config_fields())
  fields["twins"] = {**TWINS_SCHEMA, **_level_fields()}
  return fields


def _config_of(fields: dict[str, Any]) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  for name, field in fields.items():
    config[name] = _config_of(field) if isinstance(field, dict) else field.default
  return config


def default_config() -> ml_collections.ConfigDict:
  """Every config field, with its default: a 1-member dense CNN-s on Fashion-MNIST."""
  return _config_of(schema())


#: Target sparsities of the method configs in configs/ (the table in docs/history/results-2026-11.md).
STUDY_SPARSITIES = (0.5, 0.8, 0.9, 0.95)


def method_study_config(method: str) -> ml_collections.ConfigDict:
  """The population every method config in ``configs/`` starts from.

  CNN-s on Fashion-MNIST, tanh / Adam 1e-3, batch 32, 4 epochs, one member
  per target sparsity in :data:`STUDY_SPARSITIES` and seed (2 seeds), so the
  methods compare on equal terms.
  """
  config = default_config()
  config.population.grid.sparsity = STUDY_SPARSITIES
  config.population.grid.activation = ("tanh",)
  config.population.grid.optimizer = ("adam",)
  config.population.grid.learning_rate = (1e-3,)
  config.population.num_seeds = 2
  config.training.num_epochs = 4
  config.sparsify.method = method
  return config


def load_config_file(path: str) -> ml_collections.ConfigDict:
  """``get_config()`` of a config file, as ``--config=path`` gives it (for scripts and tests);
  ``path:argument`` calls ``get_config(argument)``, as ml_collections' config flags do."""
  path, _, argument = path.partition(":") if not os.path.exists(path) else (path, "", "")
  name = os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(argument) if argument else module.get_config()


def _fail(field: str, value, allowed: str) -> None:
  raise invalid_field(field, value, allowed)


def _check_known_fields(config, schema, prefix: str = "") -> None:
  for key in config.keys():
    field = f"{prefix}{key}"
    if key not in schema:
      known = ", ".join(sorted(schema.keys()))
      raise UserError(f"config.{field} is not a known field; known fields here: {known}")
    if isinstance(schema[key], ml_collections.ConfigDict):
      if not isinstance(config[key], ml_collections.ConfigDict):
        _fail(field, config[key], "it must be a group of fields")
      _check_known_fields(config[key], schema[key], field + ".")


def import_method_modules(config: ml_collections.ConfigDict) -> None:
  """Imports the modules named by ``'module:name'`` methods of ``config`` (registering them),
  so that the schema knows their fields."""
  methods = [config.get("sparsify", {}).get("method", "")]
  methods += list(config.get("twins", {}).get("methods", ()))
  for method in methods:
    if isinstance(method, str) and ":" in method:
      sparsify.import_method_module(method.split(":", 1)[0], method)


def completed_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """``config`` with every field it leaves out at its default (a copy); for a config read
  back from a run on disk, which may predate fields added since."""
  import_method_modules(config)
  completed = default_config()
  completed.update(config)
  return completed


def resolve(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The config a command runs, resolved once at the door: the modules of its
  ``'module:name'`` methods imported, every field checked against the schema, the fields
  it leaves out at their defaults (a copy) and every value validated.

  Raises:
    UserError: naming the first unknown or invalid field.
  """
  import_method_modules(config)
  resolved = default_config()
  _check_known_fields(config, resolved)
  resolved.update(config)
  check_values(resolved)
  return resolved


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises :class:`UserError` naming the first unknown or invalid field of ``config`` (see
  :func:`resolve`)."""
  resolve(config)


def check_values(config: ml_collections.ConfigDict) -> None:
  """Raises :class:`UserError` naming the first invalid value of a complete ``config``
  (e.g. one derived from a resolved config: a twins study's runs): every field's own
  check (:func:`schema`), then what relates several fields."""
  _check_fields(config, schema(), config)
  _check_relations(config)


def _check_fields(section, fields: dict[str, Any], root, prefix: str = "") -> None:
  """Every field's own check, on the values of ``section`` of the config ``root``."""
  for name, field in fields.items():
    if isinstance(field, dict):
      _check_fields(section[name], field, root, f"{prefix}{name}.")
    elif field.check is not None:
      allowed = field.check(section[name], root)
      if allowed:
        _fail(f"{prefix}{name}", section[name], allowed)


def _check_relations(config) -> None:
  """What relates several fields (each field's own values are checked by its declaration)."""
  model, training = config.model, config.training
  if model.width != 1 and model.name not in WIDTH_MODELS:
    _fail("model.width", model.width, f"{model.name} has fixed widths; use 1, or a model "
          f"whose width scales: {', '.join(WIDTH_MODELS)}")
  if model.padding != "same" and model.name not in PADDING_MODELS:
    _fail("model.padding", model.padding, f"{model.name}'s paddings are fixed; use 'same', or "
          f"a model whose padding is chosen: {', '.join(PADDING_MODELS)}")
  schedule = training.lr_schedule
  if training.warmup_epochs and schedule != "warmup_cosine":
    _fail("training.warmup_epochs", training.warmup_epochs,
          f"only lr_schedule='warmup_cosine' reads it (this run uses {schedule!r}); use 0")
  if training.lr_decay_epochs and schedule != "step":
    _fail("training.lr_decay_epochs", tuple(training.lr_decay_epochs),
          f"only lr_schedule='step' reads it (this run uses {schedule!r}); use ()")
  if training.nesterov and "sgd" not in member_values(config, "optimizer"):
    _fail("training.nesterov", True, "no member uses SGD (population.grid.optimizer); add "
          "'sgd' or leave it False")
  _check_members(config.population)
  _check_method(config)
  _check_twins(config)


def run_length_dependence(config: ml_collections.ConfigDict) -> str | None:
  """Why a resolved config's first epochs depend on how many epochs it runs (so that a
  finished run of it cannot be extended to more), or None if they do not."""
  if config.training.lr_schedule == "warmup_cosine":
    return "its learning-rate schedule 'warmup_cosine' decays over the whole run"
  if sparsify.declaration(config.sparsify.method).uses_run_length:
    return f"its method {config.sparsify.method!r} follows a schedule over the whole run"
  return None


def recipe(config: ml_collections.ConfigDict, steps_per_epoch: int) -> optim.Recipe:
  """The :class:`jaxsparse.optim.Recipe` of a resolved config, its epochs in steps."""
  training = config.training
  return optim.Recipe(
      schedule=training.lr_schedule,
      # Only what the schedule reads, so equal programs compile once.
      total_steps=(training.num_epochs * steps_per_epoch
                   if training.lr_schedule == "warmup_cosine" else 0),
      warmup_steps=round(training.warmup_epochs * steps_per_epoch),
      final_fraction=float(training.final_lr_fraction),
      decay_steps=tuple(round(epoch * steps_per_epoch) for epoch in training.lr_decay_epochs),
      decay_factor=float(training.lr_decay_factor),
      label_smoothing=float(training.label_smoothing),
      weight_decay_style=training.weight_decay_style,
      decay_biases_and_norms=bool(training.decay_biases_and_norms),
      nesterov=bool(training.nesterov))


def _check_members(population) -> None:
  """``population.members``: columns of one length with the seeds; a field it leaves out
  has one grid value; seeds are listed there, not multiplied."""
  members = population.members
  count = len(members.seed)
  for field in MEMBER_FIELDS:
    values = members[field]
    where = f"population.members.{field}"
    if values and not count:
      _fail(where, tuple(values), "list the members' seeds in population.members.seed too")
    if values and len(values) != count:
      _fail(where, f"{len(values)} values", f"list one per member: population.members.seed "
            f"lists {count}")
    if count and not values and len(population.grid[field]) != 1:
      _fail(f"population.grid.{field}", tuple(population.grid[field]),
            f"population.members lists the members; give each its value in {where} or leave "
            "one value here")
  if count and population.num_seeds != 1:
    _fail("population.num_seeds", population.num_seeds,
          "population.members lists the members (and their seeds); use 1")


def member_values(config: ml_collections.ConfigDict, field: str) -> tuple:
  """The values of a grid field the members use: their listed values, or the grid's."""
  listed = config.population.members.get(field, ()) if field != "sparsity" else ()
  return tuple(listed) or tuple(config.population.grid[field])


def _check_method(config) -> None:
  """The selected method, the members' targets and sweeps (each setting's own check applies
  to every value swept), and the method's own cross-field validation."""
  spec = sparsify.declaration(config.sparsify.method)
  if not spec.uses_target_sparsity:
    for value in config.population.grid.sparsity:
      if value != 0:
        _fail("population.grid.sparsity", value, spec.target_sparsity)
  for field, swept in config.population.method_grid.items():
    where = f"population.method_grid.{field}"
    allowed = values(_method_value_check(field), "")(swept, config)
    if allowed:
      _fail(where, swept, allowed)
    if len(swept) and config.job == "twins":
      _fail(where, swept, "the twins study sets the method settings of each twin run itself; "
            "use ()")
    if len(swept) and field not in spec.member_settings:
      accepted = spec.member_settings
      _fail(where, swept, f"method {config.sparsify.method!r} does not read {field} per "
            "member; " + (f"it accepts {', '.join(accepted)}" if accepted else "use ()"))
  if spec.validate is not None:
    spec.validate(config)


def twin_methods() -> tuple[str, ...]:
  """The registered methods that make sparsified twins."""
  return tuple(spec.name for spec in sparsify.declarations() if spec.twin_level is not None)


def _check_twins(config) -> None:
  """The twins' methods make twins, and a study has some."""
  twins = config.twins
  for method in twins.methods:
    try:
      spec = sparsify.declaration(method)
    except UserError:
      spec = None
    if spec is None or spec.twin_level is None:
      _fail("twins.methods", method,
            f"use sparsification methods from {', '.join(twin_methods())}")
  if config.job == "twins" and not twins.methods:
    _fail("twins.methods", twins.methods,
          f"list the methods to derive twins with, e.g. {twin_methods()[:2]!r}")

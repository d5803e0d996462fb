"""The config schema (every field with its default) and its validation.

Config files in ``configs/`` start from :func:`default_config` and change what
they need; :func:`validate_config` rejects anything else before a run starts,
with one line that names the field, the value and what is allowed.
"""

from __future__ import annotations

import importlib.util
import math
import os

import ml_collections

from jaxsparse import data, layers, optim, sparsify
from jaxsparse.errors import UserError, invalid_field
from jaxsparse.models import MODEL_NAMES, PADDING_MODELS, PADDINGS, WIDTH_MODELS
from jaxsparse.population import CATEGORICAL_FIELDS, GRID_FIELDS

#: Columns of ``config.population.members``: a seed and every grid field but sparsity.
MEMBER_FIELDS: tuple[str, ...] = ("seed", *GRID_FIELDS[1:])


def default_config() -> ml_collections.ConfigDict:
  """Every config field, with its default: a 1-member dense CNN-s on Fashion-MNIST."""
  config = ml_collections.ConfigDict()
  # 'train': train the zoo; 'twins': the sparsified-twins study (config.twins).
  config.job = "train"

  config.model = ml_collections.ConfigDict()
  config.model.name = "cnn_s"              # see jaxsparse.models.MODEL_NAMES
  config.model.width = 1.0                 # channel multiplier (ResNets, Conv-N)
  config.model.conv_implementation = "auto"  # 'auto' | 'im2col' | 'banded' | 'xla'
  # ResNets: 'same' (XLA's: a stride-2 conv pads bottom/right only) or 'symmetric'
  # (PyTorch's padding=1 on every side; for weights trained in PyTorch).
  config.model.padding = "same"

  config.data = ml_collections.ConfigDict()
  config.data.name = "fashion_mnist"       # a TFDS name, or 'digits' (scikit-learn)
  config.data.tfds_data_dir = ""           # '' = TFDS default ($TFDS_DATA_DIR or ~/tensorflow_datasets)
  config.data.validation_size = 10_000     # held out from the official training split
  config.data.split_seed = 0               # seed of that split (same for every member)
  config.data.mean = 0.5                   # normalisation of [0, 1] pixels
  config.data.std = 0.5
  config.data.image_size = 0               # > 0: resize images to image_size x image_size
  config.data.train_examples = 0           # > 0: use only this many training examples

  config.population = ml_collections.ConfigDict()
  config.population.num_seeds = 1          # members per grid point
  config.population.first_seed = 0
  config.population.chunk_size = 0         # members vmapped at once (0 = all), per device
  config.population.num_devices = 0        # devices the members are split over (0 = all)
  config.population.grid = ml_collections.ConfigDict()
  config.population.grid.sparsity = (0.0,)   # target sparsity of the sparsify method
  config.population.grid.activation = ("tanh",)
  config.population.grid.dropout_rate = (0.0,)
  config.population.grid.initializer = ("kaiming_uniform",)
  config.population.grid.optimizer = ("adam",)
  config.population.grid.learning_rate = (1e-3,)
  config.population.grid.weight_decay = (0.0,)
  config.population.grid.momentum = (0.9,)
  # The members listed one by one instead of grid x seeds (an imported zoo
  # does this): one column per field, all of equal length; a field left ()
  # takes its single value from population.grid. Sparsity and method_grid
  # still make axes over the listed members. () = use the grid.
  config.population.members = ml_collections.ConfigDict(
      {field: () for field in MEMBER_FIELDS})
  # Per-member values of config.sparsify settings, each a grid axis like those
  # above; () = not swept (every member uses config.sparsify's value). Only
  # the settings the selected method declares as per-member settings are
  # allowed (jaxsparse.sparsify.member_settings).
  config.population.method_grid = ml_collections.ConfigDict(
      {name: () for name in sparsify.sweepable_settings()})

  config.training = ml_collections.ConfigDict()
  config.training.num_epochs = 3
  config.training.batch_size = 32
  config.training.eval_batch_size = 1000
  config.training.evaluate_validation = True  # per-epoch validation metrics (twins skip them)
  # Evaluate (validation, test) every this many epochs, and after the last one;
  # a long zoo's curve needs no evaluation of every epoch.
  config.training.evaluate_every = 1
  # Evaluate the members before the first epoch too (logged as epoch 0): a
  # twin right after sparsification, before any fine-tuning.
  config.training.evaluate_at_start = False
  # > 0: before the last epoch, evaluate only this many test examples (the
  # first ones; logged as `curve_accuracy` at every epoch, the last included);
  # the last epoch (and epoch 0 of evaluate_at_start) evaluates the whole
  # test set. Cheap learning curves.
  config.training.curve_test_examples = 0
  # >= 0: every member trains on the same batches in the same order, drawn
  # from this seed (one first-layer GEMM for the whole population: faster on
  # the CPU; docs/benchmarks.md). -1: each member's order comes from its own
  # seed, as in the model zoos.
  config.training.shared_order_seed = -1
  # The recipe every member follows (jaxsparse.optim.Recipe); the peak learning
  # rate stays per member (population.grid.learning_rate). The defaults are
  # the model zoos' recipe: a constant rate, coupled L2 weight decay on every
  # weight, plain cross-entropy.
  config.training.lr_schedule = "constant"   # 'constant' | 'warmup_cosine' | 'step'
  config.training.warmup_epochs = 0.0        # 'warmup_cosine': linear warm-up from 0
  config.training.final_lr_fraction = 0.0    # 'warmup_cosine': final rate / peak rate
  config.training.lr_decay_epochs = ()       # 'step': epochs at which the rate is multiplied
  config.training.lr_decay_factor = 0.1      # 'step': by this factor
  config.training.label_smoothing = 0.0      # in [0, 1)
  config.training.weight_decay_style = "coupled"  # 'coupled' (L2, the zoos) | 'decoupled' (AdamW)
  config.training.decay_biases_and_norms = True   # False: decay kernels only
  config.training.nesterov = False           # Nesterov momentum for the SGD members

  # The sparsification method and the fields the registered methods read
  # (each method declares its own, with defaults and documentation: see
  # jaxsparse.sparsify.config_fields() and the method's file).
  config.sparsify = ml_collections.ConfigDict()
  config.sparsify.method = sparsify.DENSE  # see jaxsparse.sparsify.method_names()
  for name, field in sparsify.config_fields().items():
    config.sparsify[name] = field.default

  # The sparsified-twins study (jaxsparse.twins; `python -m jaxsparse.main` with
  # job = 'twins'): the zoo above trains dense, then every member gets a twin
  # per method and level, derived from its final checkpoint with the
  # config.sparsify settings and fine-tuned for twins.num_epochs on
  # twins.train_examples examples. A method's levels are listed in the field
  # its declaration names (target sparsities in twins.sparsities, or e.g. KL
  # weights for a method whose sparsity is an outcome).
  config.twins = ml_collections.ConfigDict()
  config.twins.methods = ()                    # methods to derive twins with
  # Scopes of a method with a `scope` field (magnitude pruning): one twin
  # population per scope, e.g. ('layerwise', 'global').
  config.twins.scopes = ("layerwise",)
  for levels_field, level in sparsify.twin_levels().items():
    config.twins[levels_field] = level.default_levels
  config.twins.num_epochs = 1
  config.twins.train_examples = 0              # 0 = the whole training split
  # The twins' evaluations (test accuracy, sparsity and agreement with the
  # original are logged at each): every this many fine-tuning epochs and
  # after the last, and, if evaluate_at_start, right after sparsification,
  # before any fine-tuning (epoch 0: e.g. magnitude pruning alone).
  config.twins.evaluate_every = 1
  config.twins.evaluate_at_start = False
  # A zoo trained elsewhere (e.g. `python -m jaxsparse.modelzoo import`): its run
  # directory. The twins then start from it, with its own model, data, members
  # and recipe (this config's model, data, population and training are not
  # read), and nothing is trained under <workdir>/original. '' = train the zoo.
  config.twins.original_workdir = ""

  config.checkpoint = ml_collections.ConfigDict()
  config.checkpoint.max_to_keep = 0        # 0 = keep every epoch's checkpoint

  config.logging = ml_collections.ConfigDict()
  config.logging.progress_bar = True
  config.logging.tensorboard = True

  # Several hosts (jax.distributed): every process runs the same command; each
  # trains the members on its own devices. 'auto' detects a TPU pod slice or a
  # SLURM job; 'address' uses the fields below (or $JAX_COORDINATOR_ADDRESS,
  # $JAX_NUM_PROCESSES, $JAX_PROCESS_ID); 'off' is one process.
  config.distributed = ml_collections.ConfigDict()
  config.distributed.mode = "off"              # 'off' | 'auto' | 'address'
  config.distributed.coordinator_address = ""  # host:port of process 0
  config.distributed.num_processes = 0
  config.distributed.process_id = -1
  return config


#: How ``config.distributed`` starts several processes.
DISTRIBUTED_MODES = ("off", "auto", "address")
#: What ``python -m jaxsparse.main`` does with a config (``config.job``).
JOBS = ("train", "twins")

#: Target sparsities of the method configs in configs/ (the table in docs/results.md).
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
  (e.g. one derived from a resolved config: a twins study's runs)."""
  _check_model(config)
  _check_data(config.data)
  _check_population(config)
  _check_grid(config.population.grid)
  _check_members(config.population)
  _check_training(config.training)
  _check_recipe(config)
  _check_method(config)
  _check_twins(config)
  if config.checkpoint.max_to_keep < 0:
    _fail("checkpoint.max_to_keep", config.checkpoint.max_to_keep, "use 0 (keep all) or more")


def _check_model(config) -> None:
  if config.job not in JOBS:
    _fail("job", config.job, f"use one of {', '.join(JOBS)}")
  model = config.model
  if model.name not in MODEL_NAMES:
    _fail("model.name", model.name, f"use one of {', '.join(MODEL_NAMES)}")
  if not model.width > 0:
    _fail("model.width", model.width, "use a positive multiplier, e.g. 0.5")
  if model.width != 1 and model.name not in WIDTH_MODELS:
    _fail("model.width", model.width, f"{model.name} has fixed widths; use 1, or a model "
          f"whose width scales: {', '.join(WIDTH_MODELS)}")
  if model.padding not in PADDINGS:
    _fail("model.padding", model.padding, f"use one of {', '.join(PADDINGS)}")
  if model.padding != "same" and model.name not in PADDING_MODELS:
    _fail("model.padding", model.padding, f"{model.name}'s paddings are fixed; use 'same', or "
          f"a model whose padding is chosen: {', '.join(PADDING_MODELS)}")
  if model.conv_implementation not in layers.CONV_IMPLEMENTATIONS:
    _fail("model.conv_implementation", model.conv_implementation,
          f"use one of {', '.join(layers.CONV_IMPLEMENTATIONS)}")


def _check_data(settings) -> None:
  if settings.name not in data.SUPPORTED_DATASETS:
    _fail("data.name", settings.name, f"use one of {', '.join(data.SUPPORTED_DATASETS)}")
  if settings.validation_size < 1:
    _fail("data.validation_size", settings.validation_size, "use at least 1")
  for field in ("image_size", "train_examples"):
    if settings[field] < 0:
      _fail(f"data.{field}", settings[field], "use 0 (off) or a positive number")
  for field in ("mean", "std"):
    if not _is_number(settings[field]):
      _fail(f"data.{field}", settings[field], "use a finite number")
  if not settings.std > 0:
    _fail("data.std", settings.std, "use a positive number")


def _check_population(config) -> None:
  population = config.population
  if population.num_seeds < 1:
    _fail("population.num_seeds", population.num_seeds,
          "the population would have 0 members; use 1 or more")
  if config.distributed.mode not in DISTRIBUTED_MODES:
    _fail("distributed.mode", config.distributed.mode,
          f"use one of {', '.join(DISTRIBUTED_MODES)}")
  if population.num_devices < 0:
    _fail("population.num_devices", population.num_devices,
          "use 0 (every device) or a device count")
  if population.chunk_size < 0:
    _fail("population.chunk_size", population.chunk_size, "use 0 (all at once) or more")


def _check_training(training) -> None:
  for field in ("num_epochs", "batch_size", "eval_batch_size"):
    if training[field] < 1:
      _fail(f"training.{field}", training[field], "use 1 or more")
  if not isinstance(training.evaluate_every, int) or isinstance(training.evaluate_every, bool) \
      or training.evaluate_every < 1:
    _fail("training.evaluate_every", training.evaluate_every,
          "use a whole number of epochs, 1 or more (1: every epoch)")
  if training.curve_test_examples < 0:
    _fail("training.curve_test_examples", training.curve_test_examples,
          "use 0 (the whole test set every epoch) or a positive number")
  if not isinstance(training.shared_order_seed, int) or training.shared_order_seed < -1:
    _fail("training.shared_order_seed", training.shared_order_seed,
          "use -1 (each member its own data order) or a seed >= 0 (one order for all)")


def _check_recipe(config) -> None:
  """The training recipe's fields (see :class:`jaxsparse.optim.Recipe`)."""
  training = config.training
  schedule = training.lr_schedule
  if schedule not in optim.SCHEDULES:
    _fail("training.lr_schedule", schedule, f"use one of {', '.join(optim.SCHEDULES)}")
  if not _is_number(training.warmup_epochs) or not 0 <= training.warmup_epochs < \
      training.num_epochs:
    _fail("training.warmup_epochs", training.warmup_epochs,
          f"use a number of epochs in [0, training.num_epochs={training.num_epochs})")
  if training.warmup_epochs and schedule != "warmup_cosine":
    _fail("training.warmup_epochs", training.warmup_epochs,
          f"only lr_schedule='warmup_cosine' reads it (this run uses {schedule!r}); use 0")
  if not _is_number(training.final_lr_fraction) or not 0 <= training.final_lr_fraction <= 1:
    _fail("training.final_lr_fraction", training.final_lr_fraction, "use a value in [0, 1]")
  epochs = training.lr_decay_epochs
  if not isinstance(epochs, (tuple, list)):
    _fail("training.lr_decay_epochs", epochs, f"list the epochs, e.g. ({epochs!r},)")
  for epoch in epochs:
    if not _is_number(epoch) or not 0 < epoch < training.num_epochs:
      _fail("training.lr_decay_epochs", epoch,
            f"use epochs in (0, training.num_epochs={training.num_epochs})")
  if list(epochs) != sorted(set(epochs)):
    _fail("training.lr_decay_epochs", tuple(epochs), "list distinct epochs in increasing order")
  if epochs and schedule != "step":
    _fail("training.lr_decay_epochs", tuple(epochs),
          f"only lr_schedule='step' reads it (this run uses {schedule!r}); use ()")
  if not _is_number(training.lr_decay_factor) or not 0 < training.lr_decay_factor <= 1:
    _fail("training.lr_decay_factor", training.lr_decay_factor, "use a factor in (0, 1]")
  if not _is_number(training.label_smoothing) or not 0 <= training.label_smoothing < 1:
    _fail("training.label_smoothing", training.label_smoothing, "use a value in [0, 1)")
  if training.weight_decay_style not in optim.WEIGHT_DECAY_STYLES:
    _fail("training.weight_decay_style", training.weight_decay_style,
          f"use one of {', '.join(optim.WEIGHT_DECAY_STYLES)}")
  if training.nesterov and "sgd" not in member_values(config, "optimizer"):
    _fail("training.nesterov", True, "no member uses SGD (population.grid.optimizer); add "
          "'sgd' or leave it False")


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


def _check_grid(grid) -> None:
  for field in GRID_FIELDS:
    values = grid[field]
    if not isinstance(values, (tuple, list)):
      _fail(f"population.grid.{field}", values, f"list the values, e.g. ({values!r},)")
    if len(values) == 0:
      _fail(f"population.grid.{field}", values,
            "the population would have 0 members; list at least one value")
    _check_distinct(f"population.grid.{field}", values)
    for value in values:
      _check_member_value(f"population.grid.{field}", field, value)


def _check_member_value(where: str, field: str, value) -> None:
  """One member's value of a grid field (or a seed)."""
  if field == "seed":
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
      _fail(where, value, "use whole numbers >= 0")
    return
  if field not in CATEGORICAL_FIELDS and not _is_number(value):
    _fail(where, value, "use finite numbers")
  if field in CATEGORICAL_FIELDS and value not in CATEGORICAL_FIELDS[field]:
    _fail(where, value, f"use values from {', '.join(CATEGORICAL_FIELDS[field])}")
  if field == "learning_rate" and not value > 0:
    _fail(where, value, "learning rates must be > 0")
  if field == "weight_decay" and not value >= 0:
    _fail(where, value, "weight decay must be >= 0")
  if field in ("momentum", "dropout_rate", "sparsity") and not 0 <= value < 1:
    _fail(where, value, "use a value in [0, 1)")


def _check_members(population) -> None:
  """``population.members``: equal-length columns of valid values; a field it leaves out
  has one grid value."""
  members = population.members
  count = len(members.seed)
  for field in MEMBER_FIELDS:
    values = members[field]
    where = f"population.members.{field}"
    if not isinstance(values, (tuple, list)):
      _fail(where, values, f"list one value per member, e.g. ({values!r},)")
    if values and not count:
      _fail(where, tuple(values), "list the members' seeds in population.members.seed too")
    if values and len(values) != count:
      _fail(where, f"{len(values)} values", f"list one per member: population.members.seed "
            f"lists {count}")
    for value in values:
      _check_member_value(where, field, value)
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


def _is_number(value) -> bool:
  """A finite int or float (not a bool, a string or NaN)."""
  return (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value))


def _check_distinct(field: str, values) -> None:
  """Each value of a list that makes members (or runs) once: a repeat would make identical
  members, counted twice in every statistic (and a repeated tuple override on the command
  line joins the two tuples)."""
  seen = []
  for value in values:
    if value in seen:
      _fail(field, tuple(values), f"{value!r} is listed twice; list each value once")
    seen.append(value)


def _check_method(config) -> None:
  """The selected method, the members' targets and sweeps, and every method field."""
  spec = sparsify.declaration(config.sparsify.method)
  if not spec.uses_target_sparsity:
    for value in config.population.grid.sparsity:
      if value != 0:
        _fail("population.grid.sparsity", value, spec.target_sparsity)
  _check_method_grid(config, spec)
  for name, field in sparsify.config_fields().items():
    sweep = config.population.method_grid.get(name, ())
    for where, value in [(f"sparsify.{name}", config.sparsify[name])] + [
        (f"population.method_grid.{name}", value) for value in sweep]:
      allowed = field.check(value, config) if field.check else None
      if allowed:
        _fail(where, value, allowed)
  if spec.validate is not None:
    spec.validate(config)


def _check_method_grid(config, spec: sparsify.MethodDeclaration) -> None:
  accepted = spec.member_settings
  for field, values in config.population.method_grid.items():
    where = f"population.method_grid.{field}"
    if not isinstance(values, (tuple, list)):
      _fail(where, values, f"list the values, e.g. ({values!r},), or () for "
            f"config.sparsify.{field}")
    _check_distinct(where, values)
    for value in values:
      if isinstance(value, float) and not math.isfinite(value):
        _fail(where, value, "use finite numbers")
    if len(values) and config.job == "twins":
      _fail(where, values, "the twins study sets the method settings of each twin run itself; "
            "use ()")
    if len(values) and field not in accepted:
      _fail(where, values, f"method {config.sparsify.method!r} does not read {field} per "
            "member; " + (f"it accepts {', '.join(accepted)}" if accepted else "use ()"))


def twin_methods() -> tuple[str, ...]:
  """The registered methods that make sparsified twins."""
  return tuple(spec.name for spec in sparsify.declarations() if spec.twin_level is not None)


def _check_twins(config) -> None:
  twins = config.twins
  for method in twins.methods:
    try:
      spec = sparsify.declaration(method)
    except UserError:
      spec = None
    if spec is None or spec.twin_level is None:
      _fail("twins.methods", method, f"use sparsification methods from {', '.join(twin_methods())}")
  if config.job == "twins" and not twins.methods:
    _fail("twins.methods", twins.methods,
          f"list the methods to derive twins with, e.g. {twin_methods()[:2]!r}")
  _check_distinct("twins.methods", twins.methods)
  _check_distinct("twins.scopes", twins.scopes)
  fields = sparsify.config_fields()
  for levels_field, level in sparsify.twin_levels().items():
    _check_distinct(f"twins.{levels_field}", twins[levels_field])
    for value in twins[levels_field]:
      if not _is_number(value):
        _fail(f"twins.{levels_field}", value, "use finite numbers")
      if level.setting == "sparsity":
        allowed = None if 0 <= value < 1 else "use values in [0, 1)"
      else:
        check = fields[level.setting].check
        allowed = check(value, config) if check else None
      if allowed:
        _fail(f"twins.{levels_field}", value, allowed)
  if not twins.scopes:
    _fail("twins.scopes", twins.scopes, "list at least one scope, e.g. ('layerwise',)")
  scope_check = sparsify.config_fields()["scope"].check
  for scope in twins.scopes:
    allowed = scope_check(scope, config)
    if allowed:
      _fail("twins.scopes", scope, allowed)
  if twins.num_epochs < 1:
    _fail("twins.num_epochs", twins.num_epochs, "use 1 or more")
  if not isinstance(twins.evaluate_every, int) or isinstance(twins.evaluate_every, bool) \
      or twins.evaluate_every < 1:
    _fail("twins.evaluate_every", twins.evaluate_every,
          "use a whole number of epochs, 1 or more (1: every epoch)")
  if twins.train_examples < 0:
    _fail("twins.train_examples", twins.train_examples, "use 0 (all) or a positive number")

"""The config schema (every field with its default) and its validation.

Config files in ``configs/`` start from :func:`default_config` and change what
they need; :func:`validate_config` rejects anything else before a run starts,
with one line that names the field, the value and what is allowed.
"""

from __future__ import annotations

import importlib.util
import os

import ml_collections

from jaxsparse import data, layers, masks, sparsify
from jaxsparse.errors import UserError
from jaxsparse.models import MODEL_NAMES
from jaxsparse.population import CATEGORICAL_FIELDS, GRID_FIELDS, METHOD_GRID_FIELDS
from jaxsparse.sparsify import magnitude


def default_config() -> ml_collections.ConfigDict:
  """Every config field, with its default: a 1-member dense CNN-s on Fashion-MNIST."""
  config = ml_collections.ConfigDict()
  # 'train': train the zoo; 'twins': the sparsified-twins study (config.twins).
  config.job = "train"

  config.model = ml_collections.ConfigDict()
  config.model.name = "cnn_s"              # see jaxsparse.models.MODEL_NAMES
  config.model.width = 1.0                 # channel multiplier (ResNets, Conv-N)
  config.model.conv_implementation = "auto"  # 'auto' | 'im2col' | 'xla'

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
  # Per-member values of config.sparsify settings, each a grid axis like those
  # above; () = not swept (every member uses config.sparsify's value). Only
  # the settings the method reads per member are allowed (see
  # jaxsparse.sparsify.member_settings): magnitude's start_epoch/end_epoch,
  # variational dropout's kl_weight, Gumbel-softmax's temperatures.
  config.population.method_grid = ml_collections.ConfigDict()
  config.population.method_grid.start_epoch = ()
  config.population.method_grid.end_epoch = ()
  config.population.method_grid.kl_weight = ()
  config.population.method_grid.temperature_start = ()
  config.population.method_grid.temperature_end = ()

  config.training = ml_collections.ConfigDict()
  config.training.num_epochs = 3
  config.training.batch_size = 32
  config.training.eval_batch_size = 1000
  config.training.evaluate_validation = True  # per-epoch validation metrics (twins skip them)

  config.sparsify = ml_collections.ConfigDict()
  config.sparsify.method = "none"          # see jaxsparse.sparsify.method_names()
  config.sparsify.schedule = "one_shot"    # magnitude: 'one_shot' | 'gradual' | 'iterative'
  config.sparsify.scope = "layerwise"      # magnitude: 'layerwise' | 'global'
  config.sparsify.start_epoch = 0          # pruning / grow-and-prune / KL warm-up starts here
  config.sparsify.end_epoch = 0            # ... and ends here (gradual, iterative, gap, VD)
  config.sparsify.num_rounds = 1           # iterative: prune -> fine-tune rounds; gap: grow-prune rounds
  config.sparsify.num_partitions = 4       # gap: contiguous groups of prunable tensors
  config.sparsify.update_every = 100       # steps between mask recomputations
  # variational_dropout: weight of the KL term relative to the variational
  # bound (1 = the bound; larger = sparser), warmed up linearly from 0 at
  # start_epoch to full at end_epoch; log alpha >= threshold is pruned.
  # Learning rate of a method's own variables (VD's log sigma^2, Gumbel's
  # logits, edge-popup's scores) as a multiple of the member's learning rate.
  config.sparsify.trainable_learning_rate_scale = 1.0
  config.sparsify.kl_weight = 1.0
  config.sparsify.log_alpha_threshold = 3.0
  # gumbel_softmax: temperature annealed exponentially over the run, learned
  # per-layer rescaling of kept weights, and the weight of the penalty pulling
  # the expected kept fraction to 1 - target sparsity (0 = sparsity is an outcome).
  config.sparsify.temperature_start = 1.0
  config.sparsify.temperature_end = 0.1
  config.sparsify.rescale = True
  config.sparsify.sparsity_penalty = 0.0

  # The sparsified-twins study (jaxsparse.twins; `python -m jaxsparse.twins`):
  # the zoo above trains dense, then every member gets a twin per method and
  # level, derived from its final checkpoint with the config.sparsify settings
  # and fine-tuned for twins.num_epochs on twins.train_examples examples.
  config.twins = ml_collections.ConfigDict()
  config.twins.methods = ("magnitude", "variational_dropout")
  config.twins.sparsities = (0.5, 0.8, 0.9)    # levels of target-sparsity methods
  config.twins.kl_weights = (100.0, 1000.0)    # levels of variational dropout
  config.twins.num_epochs = 1
  config.twins.train_examples = 0              # 0 = the whole training split

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

#: Target sparsities of the method configs in configs/ (the README's table).
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
  """``get_config()`` of a config file, as ``--config=path`` gives it (for scripts and tests)."""
  name = os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def _fail(field: str, value, allowed: str) -> None:
  raise UserError(f"config.{field}={value!r} is invalid: {allowed}")


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


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises :class:`UserError` naming the first invalid field of ``config``."""
  _check_known_fields(config, default_config())
  defaults = default_config()
  defaults.update(config)  # missing fields take their defaults for the checks below
  config = defaults

  if config.job not in JOBS:
    _fail("job", config.job, f"use one of {', '.join(JOBS)}")
  if config.model.name not in MODEL_NAMES:
    _fail("model.name", config.model.name, f"use one of {', '.join(MODEL_NAMES)}")
  if not config.model.width > 0:
    _fail("model.width", config.model.width, "use a positive multiplier, e.g. 0.5")
  if config.model.conv_implementation not in layers.CONV_IMPLEMENTATIONS:
    _fail("model.conv_implementation", config.model.conv_implementation,
          f"use one of {', '.join(layers.CONV_IMPLEMENTATIONS)}")

  if config.data.name not in data.SUPPORTED_DATASETS:
    _fail("data.name", config.data.name, f"use one of {', '.join(data.SUPPORTED_DATASETS)}")
  if config.data.validation_size < 1:
    _fail("data.validation_size", config.data.validation_size, "use at least 1")
  for field in ("image_size", "train_examples"):
    if config.data[field] < 0:
      _fail(f"data.{field}", config.data[field], "use 0 (off) or a positive number")
  if not config.data.std > 0:
    _fail("data.std", config.data.std, "use a positive number")

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
  for field in GRID_FIELDS:
    values = population.grid[field]
    if not isinstance(values, (tuple, list)):
      _fail(f"population.grid.{field}", values, f"list the values, e.g. ({values!r},)")
    if len(values) == 0:
      _fail(f"population.grid.{field}", values,
            "the population would have 0 members; list at least one value")
    for value in values:
      if field in CATEGORICAL_FIELDS and value not in CATEGORICAL_FIELDS[field]:
        _fail(f"population.grid.{field}", value,
              f"use values from {', '.join(CATEGORICAL_FIELDS[field])}")
      if field == "learning_rate" and not value > 0:
        _fail(f"population.grid.{field}", value, "learning rates must be > 0")
      if field == "weight_decay" and not value >= 0:
        _fail(f"population.grid.{field}", value, "weight decay must be >= 0")
      if field in ("momentum", "dropout_rate", "sparsity") and not 0 <= value < 1:
        _fail(f"population.grid.{field}", value, "use a value in [0, 1)")

  for field in ("num_epochs", "batch_size", "eval_batch_size"):
    if config.training[field] < 1:
      _fail(f"training.{field}", config.training[field], "use 1 or more")

  settings = config.sparsify
  methods = sparsify.method_names()
  if settings.method not in methods:
    _fail("sparsify.method", settings.method, f"use one of {', '.join(methods)}")
  for value in population.grid.sparsity:
    if settings.method == "none" and value != 0:
      _fail("population.grid.sparsity", value,
            "method 'none' trains dense members; set config.sparsify.method or use 0")
    if settings.method == "variational_dropout" and value != 0:
      _fail("population.grid.sparsity", value,
            "variational dropout's sparsity is an outcome of training, not a target; use 0 "
            "and tune config.sparsify.kl_weight")
  method_grid = population.method_grid
  accepted = sparsify.member_settings(settings.method)
  for field in METHOD_GRID_FIELDS:
    values = method_grid[field]
    if not isinstance(values, (tuple, list)):
      _fail(f"population.method_grid.{field}", values,
            f"list the values, e.g. ({values!r},), or () for config.sparsify.{field}")
    if len(values) and config.job == "twins":
      _fail(f"population.method_grid.{field}", values,
            "the twins study sets the method settings of each twin run itself; use ()")
    if len(values) and field not in accepted:
      _fail(f"population.method_grid.{field}", values,
            f"method {settings.method!r} does not read {field} per member; "
            + (f"it accepts {', '.join(accepted)}" if accepted else "use ()"))
    for value in values:
      if field.endswith("_epoch") and value != int(value):
        _fail(f"population.method_grid.{field}", value, "use whole epochs")

  def values_of(field):  # every value a member may have
    return tuple(method_grid[field]) or (settings[field],)

  def config_and_grid_values(field):  # (where it is set, value): the setting and its sweep
    return [(f"sparsify.{field}", settings[field])] + [
        (f"population.method_grid.{field}", value) for value in method_grid[field]]

  if settings.schedule not in magnitude.SCHEDULES:
    _fail("sparsify.schedule", settings.schedule, f"use one of {', '.join(magnitude.SCHEDULES)}")
  if settings.scope not in masks.SCOPES:
    _fail("sparsify.scope", settings.scope, f"use one of {', '.join(masks.SCOPES)}")
  num_epochs = config.training.num_epochs
  field_name = lambda field: (f"population.method_grid.{field}" if method_grid[field]
                              else f"sparsify.{field}")
  for start in values_of("start_epoch"):
    if not 0 <= start <= num_epochs:
      _fail(field_name("start_epoch"), start, f"use 0 to training.num_epochs ({num_epochs})")
  uses_end_epoch = settings.method in ("gap", "parallel_gap", "variational_dropout") or (
      settings.method == "magnitude" and settings.schedule != "one_shot")
  for start in values_of("start_epoch") if uses_end_epoch else ():
    for end in values_of("end_epoch"):
      if not start <= end <= num_epochs:
        _fail(field_name("end_epoch"), end,
              f"need start_epoch ({start}) <= end_epoch <= training.num_epochs ({num_epochs})")
  for name, value in config_and_grid_values("kl_weight"):
    if not value >= 0:
      _fail(name, value, "use 0 or more (1 = the variational bound)")
  for field in ("temperature_start", "temperature_end"):
    for name, value in config_and_grid_values(field):
      if not value > 0:
        _fail(name, value, "use a positive temperature, e.g. 0.5")
  if not settings.trainable_learning_rate_scale > 0:
    _fail("sparsify.trainable_learning_rate_scale", settings.trainable_learning_rate_scale,
          "use a positive multiple of the member's learning rate, e.g. 10")
  if not settings.sparsity_penalty >= 0:
    _fail("sparsify.sparsity_penalty", settings.sparsity_penalty, "use 0 (off) or more")
  for field in ("num_rounds", "update_every", "num_partitions"):
    if settings[field] < 1:
      _fail(f"sparsify.{field}", settings[field], "use 1 or more")
  if settings.method == "parallel_gap" and (
      settings.end_epoch - settings.start_epoch) % settings.num_rounds:
    _fail("sparsify.num_rounds", settings.num_rounds,
          f"parallel GaP's rounds last whole epochs; use a divisor of end_epoch - start_epoch "
          f"({settings.end_epoch - settings.start_epoch})")
  twins = config.twins
  for method in twins.methods:
    if method not in methods or method in ("none", "parallel_gap"):
      _fail("twins.methods", method, "use sparsification methods from "
            f"{', '.join(m for m in methods if m not in ('none', 'parallel_gap'))}")
  for value in twins.sparsities:
    if not 0 <= value < 1:
      _fail("twins.sparsities", value, "use values in [0, 1)")
  for value in twins.kl_weights:
    if not value >= 0:
      _fail("twins.kl_weights", value, "use values >= 0")
  if twins.num_epochs < 1:
    _fail("twins.num_epochs", twins.num_epochs, "use 1 or more")
  if twins.train_examples < 0:
    _fail("twins.train_examples", twins.train_examples, "use 0 (all) or a positive number")
  if config.checkpoint.max_to_keep < 0:
    _fail("checkpoint.max_to_keep", config.checkpoint.max_to_keep, "use 0 (keep all) or more")

"""Config validation: every bad config ends with one line naming the field."""

import os
import subprocess
import sys

import pytest

from jaxsparse import twins
from jaxsparse.config import default_config, load_config_file, validate_config
from jaxsparse.errors import UserError

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (description, change to the default config, field the message must name, value it must show)
def _training(**fields):
  return lambda c: c.training.update(fields)


BAD_CONFIGS = [
    ("a width for a fixed-width model", lambda c: c.model.__setattr__("width", 0.5),
     "model.width", "cnn_s has fixed widths"),
    ("an unknown schedule", _training(lr_schedule="cosine"), "training.lr_schedule",
     "warmup_cosine"),
    ("warm-up as long as the run", _training(lr_schedule="warmup_cosine", warmup_epochs=3),
     "training.warmup_epochs", "[0, training.num_epochs=3)"),
    ("warm-up that the schedule ignores", _training(warmup_epochs=1.0),
     "training.warmup_epochs", "only lr_schedule='warmup_cosine'"),
    ("a decay epoch past the run", _training(lr_schedule="step", lr_decay_epochs=(1, 5)),
     "training.lr_decay_epochs", "5"),
    ("decay epochs out of order", _training(lr_schedule="step", lr_decay_epochs=(2, 1)),
     "training.lr_decay_epochs", "increasing"),
    ("decay epochs the schedule ignores", _training(lr_decay_epochs=(1,)),
     "training.lr_decay_epochs", "only lr_schedule='step'"),
    ("a decay factor above 1", _training(lr_schedule="step", lr_decay_factor=10.0),
     "training.lr_decay_factor", "(0, 1]"),
    ("a final fraction above 1", _training(final_lr_fraction=1.5),
     "training.final_lr_fraction", "[0, 1]"),
    ("label smoothing of 1", _training(label_smoothing=1.0), "training.label_smoothing",
     "[0, 1)"),
    ("a data-order seed below -1", _training(shared_order_seed=-2),
     "training.shared_order_seed", "-1 (each member its own data order)"),
    ("an unknown decay style", _training(weight_decay_style="adamw"),
     "training.weight_decay_style", "decoupled"),
    ("Nesterov without SGD members", _training(nesterov=True), "training.nesterov",
     "no member uses SGD"),
    ("a string in a numeric grid field",
     lambda c: c.population.grid.__setattr__("learning_rate", ("1e-3",)),
     "population.grid.learning_rate", "'1e-3'"),
    ("NaN in a numeric grid field",
     lambda c: c.population.grid.__setattr__("learning_rate", (float("nan"),)),
     "population.grid.learning_rate", "nan"),
    ("a repeated grid value",
     lambda c: c.population.grid.__setattr__("learning_rate", (1e-3, 1e-3)),
     "population.grid.learning_rate", "listed twice"),
    ("a repeated twin level", lambda c: c.twins.__setattr__("sparsities", (0.5, 0.9, 0.5)),
     "twins.sparsities", "listed twice"),
    ("a repeated twin method", lambda c: c.twins.__setattr__("methods", ("magnitude",) * 2),
     "twins.methods", "listed twice"),
    ("an empty method list for the twins study",
     lambda c: (c.__setattr__("job", "twins"), c.twins.__setattr__("methods", ())),
     "twins.methods", "list the methods"),
    ("non-finite data mean", lambda c: c.data.__setattr__("mean", float("inf")), "data.mean",
     "inf"),
    ("non-finite data std", lambda c: c.data.__setattr__("std", float("nan")), "data.std", "nan"),
    ("unknown top-level field", lambda c: c.__setattr__("trainer", 1), "config.trainer", None),
    ("unknown nested field", lambda c: c.training.__setattr__("lr", 0.1), "config.training.lr", None),
    ("unknown model", lambda c: c.model.__setattr__("name", "vgg16"), "model.name", "vgg16"),
    ("unknown dataset", lambda c: c.data.__setattr__("name", "imagenet"), "data.name", "imagenet"),
    ("unknown method", lambda c: c.sparsify.__setattr__("method", "snip"), "sparsify.method", "snip"),
    ("sparsity 1", lambda c: c.population.grid.__setattr__("sparsity", (0.5, 1.0)),
     "population.grid.sparsity", "1.0"),
    ("negative sparsity", lambda c: c.population.grid.__setattr__("sparsity", (-0.1,)),
     "population.grid.sparsity", "-0.1"),
    ("sparsity without a method", lambda c: c.population.grid.__setattr__("sparsity", (0.5,)),
     "population.grid.sparsity", "0.5"),
    ("unknown schedule", lambda c: c.sparsify.__setattr__("schedule", "cubic"),
     "sparsify.schedule", "cubic"),
    ("pruning ends after training", lambda c: (c.sparsify.__setattr__("method", "magnitude"),
                                               c.sparsify.__setattr__("schedule", "gradual"),
                                               c.sparsify.__setattr__("end_epoch", 9)),
     "sparsify.end_epoch", "9"),
    ("warm-up ends after training", lambda c: (
        c.sparsify.__setattr__("method", "variational_dropout"),
        c.sparsify.__setattr__("end_epoch", 5)), "sparsify.end_epoch", "5"),
    ("pruning starts after training", lambda c: c.sparsify.__setattr__("start_epoch", 4),
     "sparsify.start_epoch", "4"),
    ("target sparsity for variational dropout", lambda c: (
        c.sparsify.__setattr__("method", "variational_dropout"),
        c.population.grid.__setattr__("sparsity", (0.9,))), "population.grid.sparsity", "0.9"),
    ("negative KL weight", lambda c: c.sparsify.__setattr__("kl_weight", -1.0),
     "sparsify.kl_weight", "-1.0"),
    ("zero temperature", lambda c: c.sparsify.__setattr__("temperature_end", 0.0),
     "sparsify.temperature_end", "0.0"),
    ("method grid field the method does not read", lambda c: (
        c.sparsify.__setattr__("method", "magnitude"),
        c.population.method_grid.__setattr__("temperature_end", (0.5, 0.1))),
     "population.method_grid.temperature_end", "(0.5, 0.1)"),
    ("zero temperature in the method grid", lambda c: (
        c.sparsify.__setattr__("method", "gumbel_softmax"),
        c.population.method_grid.__setattr__("temperature_start", (1.0, 0.0))),
     "population.method_grid.temperature_start", "0.0"),
    ("method grid ends pruning before it starts", lambda c: (
        c.sparsify.__setattr__("method", "magnitude"), c.sparsify.__setattr__("schedule", "gradual"),
        c.population.method_grid.__setattr__("start_epoch", (0, 2)),
        c.population.method_grid.__setattr__("end_epoch", (1, 3))),
     "population.method_grid.end_epoch", "1"),
    ("method grid in a twins study", lambda c: (
        c.__setattr__("job", "twins"),
        c.population.method_grid.__setattr__("kl_weight", (1.0, 10.0))),
     "population.method_grid.kl_weight", "(1.0, 10.0)"),
    ("negative sparsity penalty", lambda c: c.sparsify.__setattr__("sparsity_penalty", -5.0),
     "sparsify.sparsity_penalty", "-5.0"),
    ("zero partitions", lambda c: c.sparsify.__setattr__("num_partitions", 0),
     "sparsify.num_partitions", "0"),
    ("unknown scope", lambda c: c.sparsify.__setattr__("scope", "per_channel"),
     "sparsify.scope", "per_channel"),
    ("no seeds", lambda c: c.population.__setattr__("num_seeds", 0), "population.num_seeds", "0"),
    ("empty grid axis", lambda c: c.population.grid.__setattr__("learning_rate", ()),
     "population.grid.learning_rate", "()"),
    ("zero learning rate", lambda c: c.population.grid.__setattr__("learning_rate", (1e-3, 0.0)),
     "population.grid.learning_rate", "0.0"),
    ("negative learning rate", lambda c: c.population.grid.__setattr__("learning_rate", (-1e-3,)),
     "population.grid.learning_rate", "-0.001"),
    ("unknown activation", lambda c: c.population.grid.__setattr__("activation", ("swish",)),
     "population.grid.activation", "swish"),
    ("unknown optimizer", lambda c: c.population.grid.__setattr__("optimizer", ("rmsprop",)),
     "population.grid.optimizer", "rmsprop"),
    ("unknown initializer", lambda c: c.population.grid.__setattr__("initializer", ("zeros",)),
     "population.grid.initializer", "zeros"),
    ("dropout 1", lambda c: c.population.grid.__setattr__("dropout_rate", (1.0,)),
     "population.grid.dropout_rate", "1.0"),
    ("negative weight decay", lambda c: c.population.grid.__setattr__("weight_decay", (-1.0,)),
     "population.grid.weight_decay", "-1.0"),
    ("zero epochs", lambda c: c.training.__setattr__("num_epochs", 0), "training.num_epochs", "0"),
    ("zero batch", lambda c: c.training.__setattr__("batch_size", 0), "training.batch_size", "0"),
    ("unknown conv implementation",
     lambda c: c.model.__setattr__("conv_implementation", "fft"), "model.conv_implementation", "fft"),
    ("zero width", lambda c: c.model.__setattr__("width", 0.0), "model.width", "0.0"),
    ("unknown VD noise sampling",
     lambda c: c.sparsify.update(method="variational_dropout", weight_noise_sampling="per_step"),
     "sparsify.weight_noise_sampling", "per_step"),
]


@pytest.mark.parametrize("description,change,field,value", BAD_CONFIGS,
                         ids=[case[0] for case in BAD_CONFIGS])
def test_bad_config_gives_one_line_naming_the_field(description, change, field, value):
  config = default_config()
  change(config)
  with pytest.raises(UserError) as error:
    validate_config(config)
  message = str(error.value)
  assert "\n" not in message
  assert field in message
  if value is not None:
    assert value in message


def test_default_config_and_shipped_configs_are_valid():
  validate_config(default_config())
  for name in sorted(os.listdir(os.path.join(REPOSITORY, "configs"))):
    if name.endswith(".py"):
      validate_config(load_config_file(os.path.join(REPOSITORY, "configs", name)))


def run_cli(*arguments, workdir):
  return subprocess.run(
      [sys.executable, "-m", "jaxsparse.main", "--config=configs/default.py",
       f"--workdir={workdir}", *arguments],
      cwd=REPOSITORY, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("override,field", [
    ("--config.population.grid.learning_rate=(0.0,)", "population.grid.learning_rate"),
    *(pytest.param(*case, marks=pytest.mark.slow) for case in [
        ("--config.population.grid.sparsity=(1.5,)", "population.grid.sparsity"),
        ("--config.model.name=vgg", "model.name"),
        ("--config.population.num_seeds=0", "population.num_seeds")]),
])
def test_cli_prints_one_line_without_traceback(tmp_path, override, field):
  result = run_cli(override, workdir=tmp_path / "run")
  assert result.returncode == 2, result.stderr
  error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(error_lines) == 1 and field in error_lines[0]
  assert "Traceback" not in result.stderr
  assert not (tmp_path / "run").exists(), "a rejected config must not create the workdir"


@pytest.mark.slow
def test_cli_rejects_unknown_override_field(tmp_path):
  result = run_cli("--config.training.lr=0.1", workdir=tmp_path / "run")
  assert result.returncode == 2
  assert "Traceback" not in result.stderr
  assert result.stderr.strip().splitlines() == [
      "error: config.training.lr is not a known field; see docs/configuration.md for the fields"]


@pytest.mark.slow
def test_cli_rejects_override_of_wrong_type(tmp_path):
  result = run_cli("--config.training.num_epochs=abc", workdir=tmp_path / "run")
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and "num_epochs" in lines[0] and "abc" in lines[0]


@pytest.mark.parametrize("name", ["default.py", "twins_paper.py", "twins_paper.py:uniform"])
def test_shipped_study_configs_give_valid_runs(name):
  config = load_config_file(os.path.join(REPOSITORY, "configs", name))
  assert config.job == "twins"
  validate_config(twins.original_config(config))
  runs = twins.twin_runs(config, "study")
  # The main job adds VD with a straight-through clip; the paper's config keeps the
  # public protocol only.
  assert [run.name for run in runs] == ["magnitude (layerwise)", "magnitude (global)",
                                        "variational_dropout"] + (
      ["variational_dropout_straight_through"] if name == "default.py" else [])
  for run in runs:
    validate_config(twins.twin_config(config, run))
  if name.endswith(":uniform"):
    assert config.population.grid.initializer == ("uniform",)
    assert config.population.num_seeds == 1000

"""Importing and exporting the published model zoos' layout, checked against PyTorch.

The reference networks below are written here from the zoos' documented
structure (an ``nn.ModuleList`` of conv -> max-pool -> activation ->
[dropout] blocks, a flatten and linear layers; docs/modelzoo.md), so that a
mapping error in jaxsparse cannot hide in a shared helper.
"""

import fractions
import json
import os

import jax
import numpy as np
import pandas as pd
import pytest

from jaxsparse import checkpoints, engine, metrics, models
from jaxsparse.errors import UserError
from jaxsparse.modelzoo import __main__ as cli
from jaxsparse.modelzoo import export_run, import_zoo

from conftest import random_dataset

torch = pytest.importorskip("torch")
nn = torch.nn

ACTIVATION_MODULES = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}


def zoo_cnn(nlin: str, dropout: float) -> nn.Module:
  """The zoo's CNN-s ("CNN") for 1-channel 28x28 images, as a ModuleList."""
  act = ACTIVATION_MODULES[nlin]
  drop = [nn.Dropout(dropout)] if dropout > 0 else []
  modules = [nn.Conv2d(1, 8, 5), nn.MaxPool2d(2, 2), act(), *drop,
             nn.Conv2d(8, 6, 5), nn.MaxPool2d(2, 2), act(), *drop,
             nn.Conv2d(6, 4, 2), act(), nn.Flatten(),
             nn.Linear(36, 20), act(), *([nn.Dropout(dropout)] if dropout > 0 else []),
             nn.Linear(20, 10)]

  class CNN(nn.Module):
    def __init__(self):
      super().__init__()
      self.module_list = nn.ModuleList(modules)

    def forward(self, x):
      for module in self.module_list:
        x = module(x)
      return x
  return CNN()


TRIALS = [("tanh", 0.0, "adam", 1), ("relu", 0.5, "sgd", 2), ("gelu", 0.0, "adam", 3)]


def write_zoo(root, epochs=(0, 1, 2)) -> list[nn.Module]:
  """A zoo of three trials in the Ray Tune layout; returns each trial's final network."""
  networks = []
  for index, (nlin, dropout, optimizer, seed) in enumerate(TRIALS):
    trial = root / f"NN_tune_trainable_{index:05d}_seed={seed}"
    trial.mkdir(parents=True)
    params = {"model::type": "CNN", "model::channels_in": 1, "model::nlin": nlin,
              "model::dropout": dropout, "model::init_type": "kaiming_uniform",
              "optim::optimizer": optimizer, "optim::lr": 1e-3, "optim::wd": 1e-4,
              "seed": seed, "training::batchsize": 10, "training::epochs_train": 2,
              "cuda": False}
    if optimizer == "sgd":
      params["optim::momentum"] = 0.9
    (trial / "params.json").write_text(json.dumps(params))
    torch.manual_seed(seed)
    network = zoo_cnn(nlin, dropout)
    lines = []
    for epoch in epochs:
      with torch.no_grad():
        for parameter in network.parameters():
          parameter.add_(0.05 * torch.randn_like(parameter))
      (trial / f"checkpoint_{epoch:06d}").mkdir()
      torch.save(network.state_dict(), trial / f"checkpoint_{epoch:06d}" / "checkpoints")
      lines.append(json.dumps({"train_loss": 1.0 / (epoch + 1), "train_acc": 0.1 * epoch,
                               "test_loss": 2.0, "test_acc": 0.5 + 0.01 * epoch + 0.1 * index,
                               "training_iteration": epoch, "config": params}))
    (trial / "result.json").write_text("\n".join(lines) + "\n")
    networks.append(network.eval())
  return networks


def torch_logits(network: nn.Module, images: np.ndarray) -> np.ndarray:
  with torch.no_grad():
    return network(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()


def jax_logits(workdir, images):
  state, table = checkpoints.load_population(workdir)
  run_model = models.get_model("cnn_s", images.shape[1:])
  from jaxsparse.layers import ACTIVATIONS
  logits = []
  for member, activation in enumerate(table["activation"]):
    variables = {"params": engine.member(state.params, member), "batch_stats": {}}
    out, _ = models.apply_model(run_model, variables, images, ACTIVATIONS.index(activation))
    logits.append(np.asarray(out))
  return logits


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
  root = tmp_path_factory.mktemp("zoo")
  networks = write_zoo(root / "source")
  data = random_dataset(num_train=64)
  workdir = root / "imported"
  members = import_zoo(str(root / "source"), str(workdir), dataset=data)
  return root, networks, data, workdir, members


def test_imported_members_compute_the_pytorch_networks_logits(imported):
  _, networks, data, workdir, _ = imported
  for network, logits in zip(networks, jax_logits(workdir, data.test_images)):
    np.testing.assert_allclose(logits, torch_logits(network, data.test_images),
                               rtol=1e-4, atol=1e-5)


def test_import_writes_an_ordinary_run_with_source_metrics(imported):
  _, networks, data, workdir, members = imported
  assert sorted(os.listdir(workdir)) == sorted(
      ["checkpoints", "metadata.json", "metrics.jsonl", "members.csv", "predictions.npz",
       "source_results.csv"])
  table = pd.read_csv(workdir / "members.csv")
  assert list(table["seed"]) == [1, 2, 3]
  assert list(table["activation"]) == ["tanh", "relu", "gelu"]
  assert list(table["optimizer"]) == ["adam", "sgd", "adam"]
  np.testing.assert_allclose(table["dropout_rate"], [0.0, 0.5, 0.0])
  np.testing.assert_allclose(table["momentum"], [0.0, 0.9, 0.0])
  # accuracy computed here, from PyTorch's predictions on the same test split
  expected = [(torch_logits(network, data.test_images).argmax(1) == data.test_labels).mean()
              for network in networks]
  np.testing.assert_allclose(table["test_accuracy"], expected)
  np.testing.assert_allclose(table["source_test_accuracy"], [0.52, 0.62, 0.72])
  assert list(table["training::epochs_train"]) == [2, 2, 2]
  assert table["trial"].str.startswith("NN_tune_trainable_").all()
  source = pd.read_csv(workdir / "source_results.csv")
  assert len(source) == 9 and "config" not in source
  metadata = json.loads((workdir / "metadata.json").read_text())
  assert metadata["imported_from"]["epoch"] == 2
  assert metrics.read_predictions(str(workdir))["accuracy"].shape == (3,)


def test_an_earlier_epoch_imports_that_checkpoint(imported, tmp_path):
  root, _, data, _, _ = imported
  import_zoo(str(root / "source"), str(tmp_path / "epoch1"), epoch=1, dataset=data)
  state, _ = checkpoints.load_population(str(tmp_path / "epoch1"))
  first = torch.load(root / "source" / "NN_tune_trainable_00000_seed=1" / "checkpoint_000001"
                     / "checkpoints", weights_only=True)
  np.testing.assert_allclose(np.asarray(state.params["Dense_1"]["kernel"][0]),
                             first["module_list.11.weight"].numpy().T)


@pytest.mark.slow
def test_exported_checkpoints_reproduce_jaxsparse_predictions_in_pytorch(imported, tmp_path):
  _, _, data, workdir, _ = imported
  out = tmp_path / "exported"
  export_run(str(workdir), str(out))
  trials = sorted(os.listdir(out))
  assert len(trials) == 3
  predictions = metrics.read_predictions(str(workdir))["predictions"]
  for member, trial in enumerate(trials):
    params = json.loads((out / trial / "params.json").read_text())
    assert params["model::type"] == "CNN" and params["seed"] == member + 1
    network = zoo_cnn(params["model::nlin"], params["model::dropout"])
    state_dict = torch.load(out / trial / "checkpoint_000002" / "checkpoints",
                            weights_only=True)
    network.load_state_dict(state_dict)
    logits = torch_logits(network.eval(), data.test_images)
    np.testing.assert_array_equal(logits.argmax(1), predictions[member])
    results = [json.loads(line) for line in (out / trial / "result.json").read_text().splitlines()]
    assert [row["training_iteration"] for row in results] == [2]


def test_errors_are_one_line_and_leave_nothing(imported, tmp_path, capsys):
  root, _, data, _, _ = imported
  source = tmp_path / "bad"
  write_zoo(source, epochs=(0, 1))
  trial = sorted(source.iterdir())[1]
  params = json.loads((trial / "params.json").read_text())
  cases = [  # (change to the zoo, command, what the line names)
      ({}, ["--epoch", "5"], "no checkpoint of epoch 5"),
      ({"model::type": "CNN2"}, [], "mixes architectures"),
      ({"model::nlin": "leakyrelu"}, [], "model::nlin='leakyrelu' has no jaxsparse"),
      ({"training::batchsize": 32}, [], "batch sizes"),
      ({"seed": "one"}, [], "seed='one' is not a whole number")]
  for name, (change, options, expected) in zip("abcde", cases):
    (trial / "params.json").write_text(json.dumps({**params, **change}))
    argv = ["import", str(source), "--workdir", str(tmp_path / name), *options]
    assert cli.main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and expected in error, error
    assert "trial NN_tune_trainable_0000" in error, error
  assert sorted(path.name for path in tmp_path.iterdir()) == ["bad"]


@pytest.mark.parametrize("damage,expected", [
    ("pickle", "weights_only"), ("garbage", "not a readable PyTorch file"),
    ("shape", "has shape"), ("keys", "does not fit")])
def test_bad_checkpoints_are_named_and_refused(tmp_path, damage, expected):
  source = tmp_path / "zoo"
  write_zoo(source, epochs=(1,))
  path = sorted(source.iterdir())[2] / "checkpoint_000001" / "checkpoints"
  state = torch.load(path, weights_only=True)
  if damage == "pickle":
    # an object weights_only refuses to unpickle (PyTorch 2.14 allows exceptions)
    torch.save({"model": state, "note": fractions.Fraction(1, 3)}, path)
  elif damage == "garbage":
    path.write_bytes(b"not a checkpoint")
  elif damage == "shape":
    state["module_list.0.weight"] = torch.zeros(8, 1, 3, 3)
    torch.save(state, path)
  else:
    state["module_list.99.weight"] = state.pop("module_list.11.weight")
    torch.save(state, path)
  with pytest.raises(UserError, match=expected) as error:
    import_zoo(str(source), str(tmp_path / "out"), dataset=random_dataset(num_train=32))
  assert "seed=3" in str(error.value)
  assert not (tmp_path / "out").exists()
  assert [path.name for path in tmp_path.iterdir()] == ["zoo"]


def _poison(source, trial, change):
  """Rewrites one trial's last checkpoint with ``change(state_dict)``."""
  for path in sorted(sorted(source.iterdir())[trial].glob("checkpoint_*/checkpoints"))[-1:]:
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(state, path)


def test_imported_members_with_non_finite_weights_are_diverged_and_counted(tmp_path, capsys):
  source = tmp_path / "zoo"
  write_zoo(source, epochs=(1,))
  _poison(source, 1, lambda state: state["module_list.0.weight"].fill_(float("nan")))
  _poison(source, 2, lambda state: state["module_list.11.bias"].fill_(float("inf")))
  members = import_zoo(str(source), str(tmp_path / "out"), dataset=random_dataset(num_train=32))
  assert list(members["diverged"]) == [False, True, True]
  assert "2 of 3 members have non-finite weights or test logits" in capsys.readouterr().out
  state, _ = checkpoints.load_population(str(tmp_path / "out"))
  assert list(np.asarray(state.diverged)) == [False, True, True]
  assert metrics.read_predictions(str(tmp_path / "out"))["diverged"].tolist() == \
      [False, True, True]


def test_lossy_dtype_casts_are_named_and_exact_ones_are_not(tmp_path, capsys):
  source = tmp_path / "zoo"
  write_zoo(source, epochs=(1,))
  _poison(source, 0, lambda state: state.__setitem__(
      "module_list.0.bias", state["module_list.0.bias"].double() + 1e-12))
  _poison(source, 1, lambda state: state.__setitem__(
      "module_list.11.bias", state["module_list.11.bias"].double()))  # exact in float32
  import_zoo(str(source), str(tmp_path / "out"), dataset=random_dataset(num_train=32))
  warning = capsys.readouterr().err.strip().splitlines()
  assert len(warning) == 1 and warning[0].startswith("warning: 1 trial(s)")
  assert "seed=1 (module_list.0.bias)" in warning[0] and "seed=2" not in warning[0]


def test_an_unreadable_trial_is_refused_or_skipped_and_listed(tmp_path, capsys):
  source = tmp_path / "zoo"
  write_zoo(source, epochs=(1,))
  broken = sorted(source.iterdir())[1]
  (broken / "params.json").unlink()
  (broken / "params.json").mkdir()
  with pytest.raises(UserError, match="seed=2: params.json is not a readable JSON file.*"
                                      "--skip_unreadable"):
    import_zoo(str(source), str(tmp_path / "refused"), dataset=random_dataset(num_train=32))
  assert not (tmp_path / "refused").exists()
  members = import_zoo(str(source), str(tmp_path / "out"), dataset=random_dataset(num_train=32),
                       skip_unreadable=True)
  assert list(members["seed"]) == [1, 3]
  skipped = pd.read_csv(tmp_path / "out" / "skipped_trials.csv")
  assert list(skipped["trial"]) == [broken.name]
  assert "params.json" in skipped["reason"][0]
  assert "Skipped 1 trial(s) that cannot be read" in capsys.readouterr().out
  metadata = json.loads((tmp_path / "out" / "metadata.json").read_text())
  assert metadata["imported_from"]["skipped_trials"] == [broken.name]


def test_arrays_export_loads_in_two_lines(imported, tmp_path):
  _, networks, _, workdir, _ = imported
  out = tmp_path / "arrays"
  export_run(str(workdir), str(out), format="arrays")
  weights = np.load(out / "weights.npy")
  members = pd.read_csv(out / "members.csv")
  assert weights.shape == (3, 2464) and len(members) == 3
  index = json.loads((out / "index.json").read_text())
  assert index["order"] == "pytorch" and index["parameters"] == 2464
  # the positions of the index map hold the PyTorch tensors
  for segment in index["segments"]:
    layer, kind = segment["name"].rsplit(".", 1)
    position = {"Conv_0": 0, "Conv_1": 3, "Conv_2": 6, "Dense_0": 9, "Dense_1": 11}[layer]
    tensor = dict(networks[0].state_dict())[f"module_list.{position}.{kind}"].numpy()
    start, size = segment["start"], segment["size"]
    np.testing.assert_allclose(weights[0, start:start + size], tensor.reshape(-1), rtol=1e-6)
  assert np.load(out / "masks.npy").min() == 1.0


def test_without_pytorch_the_commands_say_what_to_install(monkeypatch, tmp_path):
  import builtins
  real_import = builtins.__import__

  def no_torch(name, *args, **kwargs):
    if name == "torch" or name.startswith("torch."):
      raise ImportError("No module named 'torch'")
    return real_import(name, *args, **kwargs)
  monkeypatch.setattr(builtins, "__import__", no_torch)
  source = tmp_path / "zoo"
  source.mkdir()
  (source / "t0").mkdir()
  (source / "t0" / "params.json").write_text(json.dumps({
      "model::type": "CNN", "model::channels_in": 1, "model::nlin": "tanh",
      "model::dropout": 0.0, "model::init_type": "uniform", "optim::optimizer": "adam",
      "optim::lr": 3e-4, "optim::wd": 0.0, "seed": 1, "training::batchsize": 10}))
  (source / "t0" / "checkpoint_000001").mkdir()
  (source / "t0" / "checkpoint_000001" / "checkpoints").write_bytes(b"x")
  with pytest.raises(UserError, match=r"pip install -e '\.\[modelzoo\]'"):
    import_zoo(str(source), str(tmp_path / "out"), dataset=random_dataset(num_train=32))
  assert not (tmp_path / "out").exists()


def torch_resnet20() -> nn.Module:
  """CIFAR ResNet-20 with option-A shortcuts and PyTorch's padding=1 convolutions."""
  class Block(nn.Module):
    def __init__(self, inputs, features, stride):
      super().__init__()
      self.conv1 = nn.Conv2d(inputs, features, 3, stride, 1, bias=False)
      self.bn1 = nn.BatchNorm2d(features)
      self.conv2 = nn.Conv2d(features, features, 3, 1, 1, bias=False)
      self.bn2 = nn.BatchNorm2d(features)
      self.stride, self.missing = stride, features - inputs

    def forward(self, x):
      y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
      shortcut = x[:, :, ::self.stride, ::self.stride]
      if self.missing:
        shortcut = nn.functional.pad(shortcut, (0, 0, 0, 0, self.missing // 2,
                                                self.missing - self.missing // 2))
      return torch.relu(y + shortcut)

  class ResNet(nn.Module):
    def __init__(self):
      super().__init__()
      self.conv, self.bn = nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16)
      blocks, inputs = [], 16
      for stage, features in enumerate((16, 32, 64)):
        for block in range(3):
          blocks.append(Block(inputs, features, 2 if stage and not block else 1))
          inputs = features
      self.blocks, self.fc = nn.Sequential(*blocks), nn.Linear(64, 10)

    def forward(self, x):
      x = self.blocks(torch.relu(self.bn(self.conv(x))))
      return self.fc(x.mean(dim=(2, 3)))
  return ResNet().eval()


def _copy_into_torch(network, params, stats):
  """jaxsparse ResNet-20 variables -> the PyTorch network (module by module, in call order)."""
  def conv(module, kernel):
    module.weight.copy_(torch.from_numpy(np.asarray(kernel).transpose(3, 2, 0, 1).copy()))

  def norm(module, scale_bias, running):
    module.weight.copy_(torch.from_numpy(np.array(scale_bias["scale"])))
    module.bias.copy_(torch.from_numpy(np.array(scale_bias["bias"])))
    module.running_mean.copy_(torch.from_numpy(np.array(running["mean"])))
    module.running_var.copy_(torch.from_numpy(np.array(running["var"])))
  with torch.no_grad():
    conv(network.conv, params["Conv_0"]["kernel"])
    norm(network.bn, params["BatchNorm_0"], stats["BatchNorm_0"])
    for index, block in enumerate(network.blocks):
      name = f"BasicBlock_{index}"
      conv(block.conv1, params[name]["Conv_0"]["kernel"])
      norm(block.bn1, params[name]["BatchNorm_0"], stats[name]["BatchNorm_0"])
      conv(block.conv2, params[name]["Conv_1"]["kernel"])
      norm(block.bn2, params[name]["BatchNorm_1"], stats[name]["BatchNorm_1"])
    network.fc.weight.copy_(torch.from_numpy(np.asarray(params["Dense_0"]["kernel"]).T.copy()))
    network.fc.bias.copy_(torch.from_numpy(np.array(params["Dense_0"]["bias"])))


@pytest.mark.parametrize("implementation", ["im2col",
                                            pytest.param("xla", marks=pytest.mark.slow)])
def test_symmetric_padding_resnet_computes_the_pytorch_resnets_logits(implementation):
  """With the same weights, a ResNet-20 with padding='symmetric' gives PyTorch's logits;
  with XLA's 'same' padding its stride-2 convolutions look at other pixels."""
  images = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype(np.float32)
  logits = {}
  for padding in ("symmetric", "same"):
    model = models.get_model("resnet20", (32, 32, 3), conv_implementation=implementation,
                             padding=padding)
    variables = jax.jit(lambda key: models.init_variables(model, key))(jax.random.PRNGKey(0))
    # BatchNorm with statistics and affine parameters that are not the identity
    key = iter(jax.random.split(jax.random.PRNGKey(1), 1000))
    ranges = {"mean": (-0.2, 0.2), "var": (0.5, 1.5), "scale": (0.5, 1.5), "bias": (-0.2, 0.2)}
    randomise = lambda path, leaf: jax.random.uniform(next(key), leaf.shape, minval=ranges[
        path[-1].key][0], maxval=ranges[path[-1].key][1])
    variables["batch_stats"] = jax.tree_util.tree_map_with_path(randomise,
                                                                variables["batch_stats"])
    variables["params"] = {name: (jax.tree_util.tree_map_with_path(randomise, value)
                                  if name.startswith("BatchNorm") else value)
                           for name, value in variables["params"].items()}
    logits[padding] = jax.jit(lambda variables, images: models.apply_model(
        model, variables, images, activation=1)[0])(variables, images)
  network = torch_resnet20()
  _copy_into_torch(network, variables["params"], variables["batch_stats"])
  with torch.no_grad():
    reference = network(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
  np.testing.assert_allclose(logits["symmetric"], reference, rtol=1e-4, atol=1e-5)
  assert np.abs(logits["same"] - reference).max() > 1e-2 * np.abs(reference).max()


@pytest.mark.slow
def test_twins_study_starts_from_an_imported_zoo(imported, tmp_path):
  from jaxsparse import config as config_lib, tables, twins
  _, _, data, workdir, members = imported
  config = config_lib.default_config()
  config.job = "twins"
  config.model.name = "lenet_300_100"  # not read: the twins keep the imported zoo's model
  config.twins.methods = ("magnitude",)
  config.twins.sparsities = (0.5,)
  config.twins.num_epochs = 1
  config.twins.original_workdir = str(workdir)
  config.logging.progress = "none"
  config.logging.tensorboard = False
  summary = twins.run_study(config, str(tmp_path / "study"), dataset=data)
  assert not (tmp_path / "study" / "original").exists()
  state, table = twins.load_twins(str(tmp_path / "study"), "magnitude", 0.5)
  assert list(table["seed"]) == [1, 2, 3]
  assert set(state.params) == {"Conv_0", "Conv_1", "Conv_2", "Dense_0", "Dense_1"}
  np.testing.assert_allclose(table["original_test_accuracy"], members["test_accuracy"])
  study = tables.load_study(str(tmp_path / "study"))
  assert len(study) == 6 and summary["claims"]

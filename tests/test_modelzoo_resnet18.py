"""The ResNet-18 model zoos, checked against torchvision.

The reference is built here as the zoos' ``def_net.py`` builds its ``ResNet18``
(ModelZoos/ModelZooDataset): torchvision's ``ResNet(BasicBlock, [2, 2, 2, 2])``
with ``conv1`` a 3x3, stride-1, padding-1 convolution without bias and
``maxpool`` an ``nn.Identity()``. Its BatchNorm statistics and affine
parameters are randomised, so that a mapping error in them cannot hide.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from jaxsparse import checkpoints, data, engine, models
from jaxsparse.data import Dataset
from jaxsparse.modelzoo import DataOptions, export_run, import_zoo

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
from torchvision.models.resnet import BasicBlock, ResNet  # noqa: E402

nn = torch.nn
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def zoo_resnet18(num_classes: int) -> nn.Module:
  """The zoos' ResNet18: torchvision's ResNet with their two replacements."""
  network = ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
  network.conv1 = nn.Conv2d(3, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1),
                            bias=False)
  network.maxpool = nn.Identity()
  return network


def randomised(network: nn.Module) -> nn.Module:
  """``network`` in eval mode with BatchNorm statistics and affine parameters that are not
  the identity, and a batch count as a trained network has."""
  with torch.no_grad():
    for module in network.modules():
      if isinstance(module, nn.BatchNorm2d):
        module.weight.uniform_(0.5, 1.5)
        module.bias.uniform_(-0.2, 0.2)
        module.running_mean.uniform_(-0.2, 0.2)
        module.running_var.uniform_(0.5, 1.5)
        module.num_batches_tracked.fill_(1000)
  return network.eval()


def write_resnet18_zoo(root, num_trials: int, num_classes: int, epoch: int = 1,
                       batch_size: int = 128) -> list[nn.Module]:
  """A zoo of ``num_trials`` ResNet-18 trials in the Ray Tune layout, with the generators'
  ``params.json`` keys; returns each trial's network (eval mode)."""
  networks = []
  for index in range(num_trials):
    seed = index + 1
    trial = root / f"NN_tune_trainable_{index:05d}_seed={seed}"
    (trial / f"checkpoint_{epoch:06d}").mkdir(parents=True)
    params = {"model::type": "Resnet18", "model::channels_in": 3, "model::o_dim": num_classes,
              "model::nlin": "relu", "model::dropout": 0.0, "model::init_type": "kaiming_uniform",
              "model::use_bias": False, "optim::optimizer": "sgd", "optim::lr": 0.1,
              "optim::wd": 5e-4, "optim::momentum": 0.9, "optim::scheduler": "OneCycleLR",
              "training::loss": "nll", "training::batchsize": batch_size,
              "training::epochs_train": 60,
              "seed": seed}
    (trial / "params.json").write_text(json.dumps(params))
    torch.manual_seed(seed)
    network = randomised(zoo_resnet18(num_classes))
    torch.save(network.state_dict(), trial / f"checkpoint_{epoch:06d}" / "checkpoints")
    (trial / "result.json").write_text(json.dumps(
        {"training_iteration": epoch, "test_acc": 0.5 + 0.1 * index, "test_loss": 1.0}) + "\n")
    networks.append(network)
  return networks


def torch_logits(network: nn.Module, images: np.ndarray) -> np.ndarray:
  with torch.no_grad():
    return network(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()


def jax_logits(workdir, images: np.ndarray) -> list[np.ndarray]:
  """Each member's logits, from the run's checkpoint, through jaxsparse's model."""
  state, table = checkpoints.load_population(str(workdir))
  metadata = json.loads((workdir / "metadata.json").read_text())
  model = models.get_model("resnet18", images.shape[1:], metadata["num_classes"],
                           padding=metadata["config"]["model"]["padding"])
  logits = []
  for member in range(len(table)):
    variables = {"params": engine.member(state.params, member),
                 "batch_stats": engine.member(state.batch_stats, member)}
    logits.append(np.asarray(models.apply_model(model, variables, images, activation=1)[0]))
  return logits


def images_dataset(shape, num_classes: int, seed: int = 0) -> Dataset:
  """Random normalised images (the zoo's inputs); only their logits matter here."""
  rng = np.random.default_rng(seed)
  split = lambda n: (rng.normal(size=(n, *shape)).astype(np.float32),
                     rng.integers(0, num_classes, n).astype(np.int32))
  return Dataset("synthetic", num_classes, *split(8), *split(4), *split(6))


@pytest.fixture(scope="module", params=[((32, 32, 3), 10), ((64, 64, 3), 200)],
                ids=["cifar", "tiny_imagenet"])
def imported(request, tmp_path_factory):
  shape, num_classes = request.param
  root = tmp_path_factory.mktemp("resnet18")
  networks = write_resnet18_zoo(root / "source", 2, num_classes)
  dataset = images_dataset(shape, num_classes)
  members = import_zoo(str(root / "source"), str(root / "imported"), dataset=dataset)
  return root, networks, dataset, members


def test_imported_members_compute_torchvisions_logits(imported):
  root, networks, dataset, members = imported
  for network, logits in zip(networks, jax_logits(root / "imported", dataset.test_images)):
    reference = torch_logits(network, dataset.test_images)
    np.testing.assert_allclose(logits, reference, rtol=1e-4,
                               atol=1e-4 * np.abs(reference).max())
    np.testing.assert_array_equal(logits.argmax(1), reference.argmax(1))
  # the test accuracy is computed here, on the data given, from those predictions
  expected = [(torch_logits(network, dataset.test_images).argmax(1) == dataset.test_labels).mean()
              for network in networks]
  np.testing.assert_allclose(members["test_accuracy"], expected)
  np.testing.assert_allclose(members["source_test_accuracy"], [0.5, 0.6])
  assert list(members["activation"]) == ["relu", "relu"] and members["evaluated"].all()
  config = json.loads((root / "imported" / "metadata.json").read_text())["config"]
  assert config["model"]["padding"] == "symmetric" and config["model"]["name"] == "resnet18"


def test_export_loads_strictly_into_torchvision_and_gives_jaxsparses_logits(imported):
  root, _, dataset, _ = imported
  out = root / "exported"
  export_run(str(root / "imported"), str(out))
  expected = jax_logits(root / "imported", dataset.test_images)
  num_classes = dataset.num_classes
  for member, trial in enumerate(sorted(os.listdir(out))):
    state_dict = torch.load(out / trial / "checkpoint_000001" / "checkpoints",
                            weights_only=True)
    network = zoo_resnet18(num_classes)
    network.load_state_dict(state_dict, strict=True)
    logits = torch_logits(network.eval(), dataset.test_images)
    np.testing.assert_allclose(logits, expected[member], rtol=1e-4,
                               atol=1e-4 * np.abs(logits).max())
    params = json.loads((out / trial / "params.json").read_text())
    assert params["model::type"] == "Resnet18" and params["model::o_dim"] == num_classes
    assert list(state_dict) == list(network.state_dict())  # torchvision's order


def test_import_without_evaluation_needs_no_data_and_says_so(tmp_path, capsys):
  write_resnet18_zoo(tmp_path / "source", 2, 100)
  members = import_zoo(str(tmp_path / "source"), str(tmp_path / "run"),
                       data=DataOptions("cifar100"), evaluate=False)
  assert not members["evaluated"].any() and "test_accuracy" not in members
  np.testing.assert_allclose(members["source_test_accuracy"], [0.5, 0.6])
  assert not (tmp_path / "run" / "predictions.npz").exists()
  metadata = json.loads((tmp_path / "run" / "metadata.json").read_text())
  assert metadata["imported_from"]["evaluated"] is False
  assert metadata["input_shape"] == [32, 32, 3] and metadata["num_classes"] == 100
  # normalised as the CIFAR-100 generator did, per channel
  np.testing.assert_allclose(metadata["config"]["data"]["channel_mean"],
                             [0.5071, 0.4867, 0.4408])
  assert "not evaluated" in capsys.readouterr().out


def test_a_zoo_of_other_classes_than_its_dataset_is_refused(tmp_path):
  from jaxsparse.errors import UserError
  write_resnet18_zoo(tmp_path / "source", 1, 200)
  with pytest.raises(UserError, match=r"model::o_dim=200 but 'cifar10' has 10 classes"):
    import_zoo(str(tmp_path / "source"), str(tmp_path / "run"), data="cifar10",
               evaluate=False)
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("damage,expected", [
    ("counter", r"bn1\.num_batches_tracked is not an integer count"),
    ("missing", r"does not fit Resnet18 .*missing \['layer1\.0\.bn1\.running_var'\]")])
def test_damaged_resnet18_state_dicts_are_named_and_refused(tmp_path, damage, expected):
  from jaxsparse.errors import UserError
  write_resnet18_zoo(tmp_path / "source", 1, 10)
  path = next((tmp_path / "source").iterdir()) / "checkpoint_000001" / "checkpoints"
  state = torch.load(path, weights_only=True)
  if damage == "counter":
    state["bn1.num_batches_tracked"] = torch.tensor(1.5)
  else:
    del state["layer1.0.bn1.running_var"]
  torch.save(state, path)
  with pytest.raises(UserError, match=expected):
    import_zoo(str(tmp_path / "source"), str(tmp_path / "run"), data="cifar10",
               evaluate=False)
  assert not (tmp_path / "run").exists()


def write_tiny_imagenet(directory, wnids: list[str], train_per_class: int,
                        val_images: int, seed: int = 0) -> None:
  """A tiny copy of Tiny-ImageNet's archive layout (JPEGs; one grey image)."""
  from PIL import Image
  rng = np.random.default_rng(seed)
  directory.mkdir(parents=True, exist_ok=True)
  (directory / "wnids.txt").write_text("\n".join(wnids) + "\n")
  image = lambda: Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
  for wnid in wnids[:10]:
    folder = directory / "train" / wnid / "images"
    folder.mkdir(parents=True)
    for index in range(train_per_class):
      image().save(folder / f"{wnid}_{index}.JPEG")
  (directory / "val" / "images").mkdir(parents=True)
  lines = []
  for index in range(val_images):
    picture = image() if index else image().convert("L")
    picture.save(directory / "val" / "images" / f"val_{index}.JPEG")
    lines.append(f"val_{index}.JPEG\t{wnids[index % 10]}\t0\t0\t63\t63")
  (directory / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")


def test_tiny_imagenet_is_read_from_a_local_copy_with_wnids_order(tmp_path):
  wnids = [f"n{index:08d}" for index in range(200)][::-1]  # not sorted: the file's order
  write_tiny_imagenet(tmp_path, wnids, train_per_class=2, val_images=6)
  dataset = data.load_dataset("tiny_imagenet", local_dir=str(tmp_path), validation_size=4,
                              mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
  assert dataset.input_shape == (64, 64, 3) and dataset.num_classes == 200
  assert len(dataset.train_labels) == 16 and len(dataset.test_labels) == 6
  np.testing.assert_array_equal(dataset.test_labels, [0, 1, 2, 3, 4, 5])
  from PIL import Image
  with Image.open(tmp_path / "val" / "images" / "val_1.JPEG") as image:
    pixels = np.asarray(image, np.float32) / 255
  np.testing.assert_allclose(dataset.test_images[1], (pixels - [0.485, 0.456, 0.406])
                             / np.array([0.229, 0.224, 0.225]), rtol=1e-5, atol=1e-5)
  grey = dataset.test_images[0] * [0.229, 0.224, 0.225] + [0.485, 0.456, 0.406]
  np.testing.assert_allclose(grey[..., 0], grey[..., 2], atol=1e-5)  # grey -> RGB


def test_tiny_imagenet_without_a_copy_says_where_to_get_it(tmp_path):
  from jaxsparse.errors import UserError
  with pytest.raises(UserError, match=r"tiny-imagenet-200\.zip.*config\.data\.local_dir"):
    data.load_dataset("tiny_imagenet")
  with pytest.raises(UserError, match="no wnids.txt"):
    data.load_dataset("tiny_imagenet", local_dir=str(tmp_path))


def _run(*arguments: str) -> subprocess.CompletedProcess:
  result = subprocess.run([sys.executable, *arguments], cwd=ROOT, capture_output=True,
                          text=True, timeout=1200)
  assert result.returncode == 0, result.stderr[-3000:]
  return result


@pytest.mark.slow
def test_tiny_imagenet_zoo_imports_twins_and_exports_from_the_command_line(tmp_path):
  """A 2-member Tiny-ImageNet ResNet-18 zoo, a local copy of its data, and the commands a
  user runs: import (evaluated on that data), magnitude twins of a few steps, export."""
  wnids = [f"n{index:08d}" for index in range(200)]
  write_tiny_imagenet(tmp_path / "tiny-imagenet-200", wnids, train_per_class=3, val_images=10)
  networks = write_resnet18_zoo(tmp_path / "zoo", 2, 200, batch_size=4)  # 5 steps an epoch
  _run("-m", "jaxsparse.modelzoo", "import", str(tmp_path / "zoo"),
       f"--workdir={tmp_path / 'imported'}", "--dataset=tiny_imagenet",
       f"--data_dir={tmp_path / 'tiny-imagenet-200'}", "--validation_size=10")
  members = pd.read_csv(tmp_path / "imported" / "members.csv")
  dataset = data.load_dataset("tiny_imagenet", local_dir=str(tmp_path / "tiny-imagenet-200"),
                              validation_size=10, mean=(0.485, 0.456, 0.406),
                              std=(0.229, 0.224, 0.225))
  expected = [(torch_logits(network, dataset.test_images).argmax(1) == dataset.test_labels).mean()
              for network in networks]
  np.testing.assert_allclose(members["test_accuracy"], expected)
  _run("-m", "jaxsparse.main", "--config=configs/default.py", f"--workdir={tmp_path / 'study'}",
       "--config.job=twins", f"--config.twins.original_workdir={tmp_path / 'imported'}",
       "--config.twins.methods=('magnitude',)", "--config.twins.scopes=('layerwise',)",
       "--config.twins.sparsities=(0.5,)",
       "--config.twins.num_epochs=1", "--config.logging.progress=none")
  twins = tmp_path / "study" / "twins" / "magnitude_layerwise"
  assert os.path.isdir(twins), os.listdir(tmp_path / "study" / "twins")
  _run("-m", "jaxsparse.modelzoo", "export", str(twins), f"--out={tmp_path / 'exported'}")
  trial = sorted(os.listdir(tmp_path / "exported"))[0]
  checkpoint = max(entry for entry in os.listdir(tmp_path / "exported" / trial)
                   if entry.startswith("checkpoint_"))
  state_dict = torch.load(tmp_path / "exported" / trial / checkpoint / "checkpoints",
                          weights_only=True)
  network = zoo_resnet18(200)
  network.load_state_dict(state_dict, strict=True)
  conv_weights = [value for key, value in state_dict.items()
                  if key.endswith(".weight") and value.ndim == 4]
  kept = sum(int((weight != 0).sum()) for weight in conv_weights)
  assert kept / sum(weight.numel() for weight in conv_weights) == pytest.approx(0.5, abs=0.01)

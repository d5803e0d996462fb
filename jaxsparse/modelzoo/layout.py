"""The published model zoos' architectures and PyTorch state dicts, mapped onto jaxsparse's.

Facts from the public zoo code (ModelZoos/ModelZooDataset, ``def_net.py``):
a zoo model is an ``nn.ModuleList`` named ``module_list`` holding every module
in call order (convolutions, pooling, activations, dropout, flatten, linear
layers), so a layer's state-dict key is ``module_list.{index}.weight`` /
``.bias`` with an index that counts the parameter-free modules too. CNN-s
("CNN") and the MLP add a dropout module only when ``model::dropout > 0``;
CNN-l ("CNN3") always adds them. Convolution weights are OIHW, linear weights
``(out, in)``, and the first linear layer after the convolutions reads
PyTorch's NCHW flatten (:mod:`jaxsparse.flat` converts the layouts).

The ResNet-18 zoos ("Resnet18", ``def_net.py``'s ``ResNet18``) are torchvision's
``ResNet(BasicBlock, [2, 2, 2, 2])`` with ``conv1`` a 3x3, stride-1, bias-free
convolution and ``maxpool`` an ``nn.Identity()``: their state dicts use
torchvision's names (``conv1``, ``bn1``, ``layer{1..4}.{0,1}.conv{1,2}`` /
``bn{1,2}``, ``downsample.{0,1}``, ``fc``), BatchNorm included
(``running_mean``, ``running_var``, ``num_batches_tracked``). Their class
ignores ``model::nlin`` and ``model::dropout`` (always ReLU, no dropout).
A member's tensors are named by the dotted path of its variables
(``params.Conv_0.kernel``, ``batch_stats.BatchNorm_0.mean``).
"""

from __future__ import annotations

import os
import pickle
from typing import Any, NamedTuple

from flax import traverse_util
import numpy as np

from jaxsparse import flat, models
from jaxsparse import errors
from jaxsparse.errors import UserError

#: What to install for the commands that read or write PyTorch files.
INSTALL_HINT = "pip install -e '.[modelzoo]' (PyTorch, CPU build)"


class ZooArchitecture(NamedTuple):
  """A zoo ``model::type`` and the jaxsparse model that is the same network.

  Attributes:
    model_type: the zoo's name (``params.json``'s ``model::type``).
    model: the jaxsparse model name.
    image_size: input height and width (0: any; a ResNet pools globally).
    always_dropout: the PyTorch class adds its dropout modules even at rate 0.
    mlp_dims: for the MLP: ``(i_dim, h_dim, o_dim)`` the jaxsparse model has.
    state_dict: ``'module_list'`` (the zoos' CNNs and MLP) or ``'torchvision_resnet'``.
    padding: ``config.model.padding`` that computes what PyTorch computed.
    fixed_members: ``(member field, value)`` pairs the PyTorch class has whatever
      ``params.json`` says (ResNet-18: ReLU, no dropout).
    normalisation: ``{dataset: (mean, std)}`` of the zoos' inputs, per channel, where
      they are not 0.5 / 0.5 (the generators' ``transforms.Normalize``).
  """
  model_type: str
  model: str
  image_size: int
  always_dropout: bool = False
  mlp_dims: tuple | None = None
  state_dict: str = "module_list"
  padding: str = "same"
  fixed_members: tuple = ()
  normalisation: dict | None = None


ARCHITECTURES: dict[str, ZooArchitecture] = {
    "CNN": ZooArchitecture("CNN", "cnn_s", 28),
    "CNN3": ZooArchitecture("CNN3", "cnn_l", 32, always_dropout=True),
    "MLP": ZooArchitecture("MLP", "lenet_300_100", 28, mlp_dims=(784, (300, 100), 10)),
    # The generators train_zoo_{cifar10,cifar100,tiny-imagenet}_resnet18_kaiming_uniform.py
    # normalise as below; Tiny-ImageNet's is ImageNet's (applied there to 0-255 pixels).
    "Resnet18": ZooArchitecture(
        "Resnet18", "resnet18", 0, state_dict="torchvision_resnet", padding="symmetric",
        fixed_members=(("activation", "relu"), ("dropout_rate", 0.0)),
        normalisation={
            "cifar10": ((125.3 / 255, 123.0 / 255, 113.9 / 255),
                        (63.0 / 255, 62.1 / 255, 66.7 / 255)),
            "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
            "tiny_imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))}),
}


def architecture_of_model(model_name: str) -> ZooArchitecture:
  """The zoo architecture that jaxsparse model ``model_name`` is (for exporting)."""
  for architecture in ARCHITECTURES.values():
    if architecture.model == model_name:
      return architecture
  raise UserError(f"model {model_name!r} has no model-zoo equivalent; the zoo layout holds "
                  f"{', '.join(f'{a.model} ({a.model_type})' for a in ARCHITECTURES.values())}")


def module_prefixes(architecture: ZooArchitecture, dropout: float) -> dict[str, str]:
  """Flax layer name -> state-dict prefix (``{'Conv_0': 'module_list.0', ...}``) of a zoo
  model with dropout rate ``dropout``: the indices count every module of the list."""
  module = models.get_model(architecture.model, (architecture.image_size,) * 2 + (1,)).module
  drops = module.conv_dropout or (True,) * len(module.conv_features)
  has_dropout = architecture.always_dropout or dropout > 0
  prefixes, index = {}, 0
  for layer, (pool, drop) in enumerate(zip(module.conv_pools, drops)):
    prefixes[f"Conv_{layer}"] = f"module_list.{index}"
    index += 1 + int(pool) + 1 + int(drop and has_dropout)  # conv, pool, activation, dropout
  index += int(bool(module.conv_features))  # nn.Flatten
  for layer in range(len(module.dense_features)):
    prefixes[f"Dense_{layer}"] = f"module_list.{index}"
    index += 2 + int(has_dropout)  # linear, activation, dropout
  prefixes[f"Dense_{len(module.dense_features)}"] = f"module_list.{index}"
  return prefixes


def state_dict_layout(shapes: dict[str, tuple[int, ...]], architecture: ZooArchitecture,
                      dropout: float) -> list[tuple[str, flat.Segment]]:
  """``(state-dict key, segment)`` for every tensor, from the shapes of a member's variables
  by dotted name (``params.Conv_0.kernel``, with a member axis): the key a zoo's checkpoint
  stores it under, and the layout conversions. Counters (:func:`counter_keys`) are not in it."""
  if architecture.state_dict == "torchvision_resnet":
    return _torchvision_resnet_layout(shapes, architecture)
  prefixes = module_prefixes(architecture, dropout)
  params = {name.split(".", 1)[1]: shape for name, shape in shapes.items()
            if name.startswith("params.")}
  layout = []
  for segment in flat.pytorch_layout(params):
    layer, kind = segment.name.rsplit(".", 1)
    layout.append((f"{prefixes[layer]}.{kind}",
                   segment._replace(source=f"params.{segment.source}")))
  return layout


#: torchvision's names of a BasicBlock's modules, by Flax's (``Conv_2``/``BatchNorm_2``: the
#: projection shortcut), and of a BatchNorm's tensors, by jaxsparse's variables.
_BLOCK_MODULES = {"Conv_0": "conv1", "BatchNorm_0": "bn1", "Conv_1": "conv2",
                  "BatchNorm_1": "bn2", "Conv_2": "downsample.0", "BatchNorm_2": "downsample.1"}
_BATCH_NORM_TENSORS = {"params.scale": "weight", "params.bias": "bias",
                       "batch_stats.mean": "running_mean", "batch_stats.var": "running_var"}
#: The stem's and classifier's torchvision names, and their places in torchvision's order.
_OUTER_MODULES = {"Conv_0": ("conv1", (0, 0, 0)), "BatchNorm_0": ("bn1", (0, 0, 1)),
                  "Dense_0": ("fc", (2, 0, 0))}
#: The order of a module's tensors in a torchvision state dict.
_TENSOR_ORDER = ("weight", "bias", "running_mean", "running_var")


def _torchvision_resnet_layout(shapes: dict[str, tuple[int, ...]],
                               architecture: ZooArchitecture) -> list[tuple[str, flat.Segment]]:
  """torchvision's ResNet state dict, in its order: the stem, each block's modules in
  :data:`_BLOCK_MODULES` order, the classifier."""
  stage_sizes = models.get_model(architecture.model, (32, 32, 3)).module.stage_sizes
  blocks = [f"layer{stage + 1}.{block}" for stage, size in enumerate(stage_sizes)
            for block in range(size)]
  entries = []
  for name, shape in shapes.items():
    collection, *path, leaf = name.split(".")
    prefix, place = _torchvision_module(path, blocks)
    segment = _torchvision_segment(name, prefix, f"{collection}.{leaf}", path[-1], len(shape))
    kind = segment.name.rsplit(".", 1)[1]
    entries.append(((*place, _TENSOR_ORDER.index(kind)), (segment.name, segment)))
  return [entry for _, entry in sorted(entries)]


def _torchvision_module(path: list[str], blocks: list[str]) -> tuple[str, tuple[int, ...]]:
  """The torchvision name of the module at Flax ``path`` (``['BasicBlock_3', 'Conv_2']`` ->
  ``'layer2.1.downsample.0'``) and its place in torchvision's order."""
  if not path[0].startswith("BasicBlock_"):
    return _OUTER_MODULES[path[0]]
  index = int(path[0].split("_")[1])
  return (f"{blocks[index]}.{_BLOCK_MODULES[path[1]]}",
          (1, index, list(_BLOCK_MODULES).index(path[1])))


def _torchvision_segment(name: str, prefix: str, tensor: str, module: str,
                         ndim: int) -> flat.Segment:
  """The segment of variable ``name`` (``tensor``: its collection and leaf, e.g.
  ``batch_stats.mean``) of the torchvision module ``prefix``."""
  if module.startswith("BatchNorm"):
    return flat.Segment(f"{prefix}.{_BATCH_NORM_TENSORS[tensor]}", name, flat.identity,
                        flat.identity)
  if tensor == "params.kernel":
    convert = ((flat.conv_to_pytorch, flat.conv_from_pytorch) if ndim == 5
               else (flat.dense_transpose, flat.dense_transpose))
    return flat.Segment(f"{prefix}.weight", name, *convert)
  return flat.Segment(f"{prefix}.bias", name, flat.identity, flat.identity)


def counter_keys(layout: list[tuple[str, flat.Segment]]) -> list[str]:
  """The BatchNorm batch counters (``num_batches_tracked``) a state dict with ``layout``
  holds: jaxsparse's BatchNorm has a fixed momentum and never reads them (nor does
  PyTorch's, unless its momentum is None), so imports check and drop them and exports
  write 0."""
  return [key[:-len("running_mean")] + "num_batches_tracked" for key, _ in layout
          if key.endswith(".running_mean")]


def torch_module():
  """PyTorch, or one line saying how to install it."""
  try:
    import torch
  except ImportError as error:
    raise UserError(f"reading and writing model-zoo checkpoints needs PyTorch; {INSTALL_HINT}"
                    ) from error
  return torch


def load_state_dict(path: str, trial: str) -> dict[str, np.ndarray]:
  """A ``torch.save``d state dict as numpy arrays, read with ``weights_only=True``: a file
  that needs arbitrary classes is refused, never unpickled."""
  torch = torch_module()
  if not os.path.isfile(path):
    raise UserError(f"trial {trial}: {path} does not exist")
  try:
    loaded = torch.load(path, map_location="cpu", weights_only=True)
  except pickle.UnpicklingError as error:
    # weights_only names the classes a file would need ("Unsupported global: ..."); any
    # other failure of its unpickler is a damaged or foreign file.
    if "unsupported global" not in str(error).lower():
      raise UserError(f"trial {trial}: {path} is not a readable PyTorch file (its unpickler "
                      "fails on it); restore the file from the zoo") from error
    raise UserError(f"trial {trial}: {path} needs more than tensors to load (weights_only "
                    "refuses it; it was not unpickled); export the state dict alone") from error
  except Exception as error:  # torch raises several kinds for a damaged file
    raise UserError(f"trial {trial}: {path} is not a readable PyTorch file "
                    f"({errors.summary(error, 120)}); restore the file from the zoo") from error
  if not isinstance(loaded, dict) or not all(
      isinstance(value, torch.Tensor) for value in loaded.values()):
    raise UserError(f"trial {trial}: {path} is not a state dict (a mapping of names to "
                    "tensors)")
  return {name: value.detach().cpu().numpy() for name, value in loaded.items()}


def save_state_dict(arrays: dict[str, np.ndarray], path: str) -> None:
  """Writes ``arrays`` as a PyTorch state dict (``torch.save`` of tensors)."""
  torch = torch_module()
  torch.save({name: torch.from_numpy(np.array(value))  # a writable copy
              for name, value in arrays.items()}, path)


class MemberTensors(NamedTuple):
  """One trial's state dict, checked against the architecture: its tensors as float32 in
  PyTorch's layout by Flax leaf name, and the keys whose cast to float32 lost information
  (float64 values rounded, large integers)."""
  tensors: dict[str, np.ndarray]
  lossy_keys: tuple[str, ...]


def member_tensors(state_dict: dict[str, np.ndarray], trial: str, dropout: float,
                   architecture: ZooArchitecture, template: dict[str, Any]) -> MemberTensors:
  """Checks one trial's state dict (keys and shapes) against ``architecture`` with dropout
  rate ``dropout`` and converts it to float32 (``template``: the shapes of one member's
  variables by dotted name, ``params.Conv_0.kernel``).

  Raises:
    UserError: a key is missing or unexpected, or a tensor has the wrong shape.
  """
  shapes = {name: (1, *shape) for name, shape in template.items()}
  layout = state_dict_layout(shapes, architecture, dropout)
  counters = counter_keys(layout)
  expected = {key for key, _ in layout} | set(counters)
  if set(state_dict) != expected:
    missing, extra = sorted(expected - set(state_dict)), sorted(set(state_dict) - expected)
    raise UserError(f"trial {trial}: its state dict does not fit {architecture.model_type} "
                    f"with dropout {dropout:g} (missing {missing[:3]}, unexpected {extra[:3]})")
  for key in counters:
    if np.shape(state_dict[key]) != () or not np.issubdtype(state_dict[key].dtype, np.integer):
      raise UserError(f"trial {trial}: {key} is not an integer count (shape "
                      f"{np.shape(state_dict[key])}, {state_dict[key].dtype})")
  tensors, lossy = {}, []
  for key, segment in layout:
    wanted = segment.to_pytorch(np.zeros(shapes[segment.source])).shape[1:]
    value = np.asarray(state_dict[key])
    if value.shape != wanted:
      raise UserError(f"trial {trial}: {key} has shape {tuple(value.shape)}, but "
                      f"{architecture.model_type} needs {tuple(wanted)}")
    converted = value.astype(np.float32)
    if value.dtype != np.float32 and not np.array_equal(converted.astype(value.dtype), value,
                                                        equal_nan=True):
      lossy.append(key)
    tensors[segment.source] = converted
  return MemberTensors(tensors, tuple(lossy))


def params_from_member_tensors(members: list[dict[str, np.ndarray]], dropouts: list[float],
                               architecture: ZooArchitecture,
                               template: dict[str, Any]) -> dict[str, np.ndarray]:
  """The members' tensors (:attr:`MemberTensors.tensors`) stacked into Flax variables by
  dotted name (``{'params.Conv_0.kernel': [P, 5, 5, 1, 8], ...}``)."""
  shapes = {name: (len(members), *shape) for name, shape in template.items()}
  layout = state_dict_layout(shapes, architecture, dropouts[0])
  return {segment.source: segment.from_pytorch(np.stack([member[segment.source]
                                                         for member in members]))
          for _, segment in layout}


def state_dicts_from_variables(variables: dict[str, np.ndarray],
                               architecture: ZooArchitecture,
                               dropouts: list[float]) -> list[dict[str, np.ndarray]]:
  """One state dict per member from a population's variables by dotted name
  (``params.Conv_0.kernel``, member axis first), BatchNorm's counters set to 0
  (:func:`counter_keys`): the inverse of :func:`params_from_member_tensors`."""
  shapes = {name: np.shape(leaf) for name, leaf in variables.items()}
  layouts = _layouts_by_dropout(shapes, architecture, dropouts)
  converted = {segment.source: segment.to_pytorch(np.asarray(variables[segment.source]))
               for _, segment in layouts[dropouts[0]]}
  state_dicts = []
  for member, dropout in enumerate(dropouts):
    state_dict = {}
    for key, segment in layouts[dropout]:
      state_dict[key] = converted[segment.source][member]
      if key.endswith(".running_var"):  # PyTorch's order: the counter follows
        state_dict[key[:-len("running_var")] + "num_batches_tracked"] = np.zeros((), np.int64)
    state_dicts.append(state_dict)
  return state_dicts


def _layouts_by_dropout(shapes: dict[str, tuple[int, ...]], architecture: ZooArchitecture,
                        dropouts: list[float]) -> dict[float, list[tuple[str, flat.Segment]]]:
  """:func:`state_dict_layout` for each distinct dropout rate of a population (the rate
  moves the state-dict indices; the segments are the same)."""
  return {dropout: state_dict_layout(shapes, architecture, dropout) for dropout in set(dropouts)}


def dotted(tree: Any) -> dict[str, Any]:
  """A nested parameter dict as ``{'Conv_0.kernel': leaf, ...}``."""
  return traverse_util.flatten_dict(tree, sep=".")


def nested(leaves: dict[str, Any]) -> dict[str, Any]:
  """The inverse of :func:`dotted`."""
  return traverse_util.unflatten_dict(leaves, sep=".")

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
    image_size: input height and width.
    always_dropout: the PyTorch class adds its dropout modules even at rate 0.
    mlp_dims: for the MLP: ``(i_dim, h_dim, o_dim)`` the jaxsparse model has.
  """
  model_type: str
  model: str
  image_size: int
  always_dropout: bool = False
  mlp_dims: tuple | None = None


ARCHITECTURES: dict[str, ZooArchitecture] = {
    "CNN": ZooArchitecture("CNN", "cnn_s", 28),
    "CNN3": ZooArchitecture("CNN3", "cnn_l", 32, always_dropout=True),
    "MLP": ZooArchitecture("MLP", "lenet_300_100", 28, mlp_dims=(784, (300, 100), 10)),
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
  """``(state-dict key, segment)`` for every parameter, from the Flax leaves' shapes (with a
  member axis): the key a zoo's checkpoint stores it under, and the layout conversions."""
  prefixes = module_prefixes(architecture, dropout)
  layout = []
  for segment in flat.pytorch_layout(shapes):
    layer, kind = segment.name.rsplit(".", 1)
    layout.append((f"{prefixes[layer]}.{kind}", segment))
  return layout


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
  rate ``dropout`` and converts it to float32 (``template``: the Flax leaves' shapes of one
  member by dotted name).

  Raises:
    UserError: a key is missing or unexpected, or a tensor has the wrong shape.
  """
  shapes = {name: (1, *shape) for name, shape in template.items()}
  layout = state_dict_layout(shapes, architecture, dropout)
  expected = {key for key, _ in layout}
  if set(state_dict) != expected:
    missing, extra = sorted(expected - set(state_dict)), sorted(set(state_dict) - expected)
    raise UserError(f"trial {trial}: its state dict does not fit {architecture.model_type} "
                    f"with dropout {dropout:g} (missing {missing[:3]}, unexpected {extra[:3]})")
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
  """The members' tensors (:attr:`MemberTensors.tensors`) stacked into Flax parameters by
  dotted leaf name (``{'Conv_0.kernel': [P, 5, 5, 1, 8], ...}``)."""
  shapes = {name: (len(members), *shape) for name, shape in template.items()}
  layout = state_dict_layout(shapes, architecture, dropouts[0])
  return {segment.source: segment.from_pytorch(np.stack([member[segment.source]
                                                         for member in members]))
          for _, segment in layout}


def state_dicts_from_params(params: dict[str, np.ndarray], architecture: ZooArchitecture,
                            dropouts: list[float]) -> list[dict[str, np.ndarray]]:
  """One state dict per member from Flax parameters by dotted leaf name (member axis
  first): the inverse of :func:`params_from_state_dicts`."""
  shapes = {name: np.shape(leaf) for name, leaf in params.items()}
  layouts = _layouts_by_dropout(shapes, architecture, dropouts)
  converted = {segment.source: segment.to_pytorch(np.asarray(params[segment.source]))
               for _, segment in layouts[dropouts[0]]}
  return [{key: converted[segment.source][member] for key, segment in layouts[dropout]}
          for member, dropout in enumerate(dropouts)]


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

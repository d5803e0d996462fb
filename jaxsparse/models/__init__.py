"""Model registry and the functional model interface.

A :class:`Model` is a Flax module plus what the engine needs to know about it.
Its two pure functions are :func:`init_variables` (key, initializer index ->
variables) and :func:`apply_model` (variables, images -> logits, new model
state). ``variables`` is a plain dict ``{'params': ..., 'batch_stats': ...}``
(``batch_stats`` empty for models without BatchNorm); models hold no state
between calls.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import flax.linen as nn
from flax import traverse_util
import jax
import jax.numpy as jnp

from jaxsparse import layers
from jaxsparse.models import resnet, zoo

#: Weight initializers selectable per member, in the order of their index.
#: The first four are the model zoos' own (``torch.nn.init`` with its
#: defaults, as the public zoo code calls it; docs/twins.md): ``uniform`` is
#: U(0, 1), ``normal`` N(0, 1), ``kaiming_*`` He et al. with PyTorch's defaults
#: (a = 0, fan_in, gain sqrt(2)). ``fan_in_uniform`` U(-1/sqrt(fan_in),
#: 1/sqrt(fan_in)) (PyTorch's default layer init) and ``fan_in_normal``
#: N(0, 1/fan_in) keep tanh and sigmoid networks trainable at any depth.
#: ``xavier_uniform`` / ``xavier_normal`` are Glorot's with gain 1, as
#: ``torch.nn.init`` draws them (the zoo code offers them too).
INITIALIZERS: tuple[str, ...] = ("uniform", "normal", "kaiming_uniform", "kaiming_normal",
                                 "fan_in_uniform", "fan_in_normal", "xavier_uniform",
                                 "xavier_normal")

_FACTORIES: dict[str, Callable[..., nn.Module]] = {
    "cnn_s": zoo.cnn_s,
    "cnn_l": zoo.cnn_l,
    "lenet_300_100": zoo.lenet_300_100,
    "lenet_5": zoo.lenet_5,
    "conv2": zoo.conv2,
    "conv4": zoo.conv4,
    "conv6": zoo.conv6,
    "resnet20": resnet.resnet20,
    "resnet56": resnet.resnet56,
    "resnet18": resnet.resnet18,
}

#: Biases of the model-zoo CNNs are initialised to 0.01 (Schürholt et al. 2022; docs/twins.md).
_BIAS_INIT = {"cnn_s": 0.01, "cnn_l": 0.01}

MODEL_NAMES: tuple[str, ...] = tuple(_FACTORIES)
#: The models whose channel counts ``width`` scales (the zoo's fixed models ignore it).
WIDTH_MODELS: tuple[str, ...] = ("conv2", "conv4", "conv6", "resnet20", "resnet56", "resnet18")


class Model(NamedTuple):
  """A registered architecture, bound to an input shape and a class count.

  Attributes:
    name: registry name, e.g. ``'cnn_s'``.
    module: the Flax module.
    input_shape: (height, width, channels) of one image.
    bias_init: constant the biases of Conv / Dense layers start at.
  """
  name: str
  module: nn.Module
  input_shape: tuple[int, int, int]
  bias_init: float


#: ``config.model.padding``: 'same' (XLA's) or 'symmetric' (PyTorch's), for the ResNets.
PADDINGS: tuple[str, ...] = ("same", "symmetric")
#: The models whose convolutions ``padding`` sets (the others have fixed paddings).
PADDING_MODELS: tuple[str, ...] = ("resnet20", "resnet56", "resnet18")


def get_model(name: str, input_shape: tuple[int, int, int], num_classes: int = 10,
              conv_implementation: str = "auto", width: float = 1.0,
              padding: str = "same") -> Model:
  """Builds the registered model ``name`` for images of ``input_shape``.

  Args:
    name: one of :data:`MODEL_NAMES`.
    input_shape: (height, width, channels).
    num_classes: number of logits.
    conv_implementation: 'auto', 'im2col', 'banded' or 'xla'
      (:func:`jaxsparse.layers.resolve_conv_implementation`).
    width: channel multiplier (the models of :data:`WIDTH_MODELS`; the others have
      fixed widths, and the config refuses another width for them).
    padding: 'same' or 'symmetric' (:data:`PADDINGS`; the models of
      :data:`PADDING_MODELS`): a stride-2 'same' convolution pads the bottom and right
      only, as XLA does; 'symmetric' pads every side, as PyTorch's ``padding=1`` does, so
      a ResNet with weights from PyTorch computes what it computed there.
  """
  if name not in _FACTORIES:
    raise ValueError(f"model {name!r} is unknown; use one of {MODEL_NAMES}")
  if padding not in PADDINGS or (padding != "same" and name not in PADDING_MODELS):
    raise ValueError(f"padding {padding!r} is not available for {name}")
  module = _FACTORIES[name](num_classes=num_classes,
                            conv_implementation=layers.resolve_conv_implementation(
                                conv_implementation),
                            width=width)
  if name in PADDING_MODELS:
    module = module.clone(padding=padding.upper())
  return Model(name, module, tuple(input_shape), _BIAS_INIT.get(name, 0.0))


def _draw_kernel(key: jax.Array, shape: tuple[int, ...], initializer: jax.Array | int) -> jax.Array:
  """Draws a kernel from initializer family ``initializer`` (index into INITIALIZERS)."""
  scale = 1.0 / jnp.sqrt(layers.fan_in(shape))
  glorot = jnp.sqrt(2.0 / (layers.fan_in(shape) + layers.fan_out(shape)))
  uniform = jax.random.uniform(key, shape, minval=-1.0, maxval=1.0)
  normal = jax.random.normal(key, shape)
  candidates = jnp.stack([
      (uniform + 1.0) / 2.0,                # U(0, 1): torch.nn.init.uniform_
      normal,                               # N(0, 1): torch.nn.init.normal_
      uniform * scale * jnp.sqrt(6.0),      # kaiming uniform, gain sqrt(2)
      normal * scale * jnp.sqrt(2.0),       # kaiming normal, gain sqrt(2)
      uniform * scale,                      # U(-1/sqrt(fan_in), 1/sqrt(fan_in))
      normal * scale,                       # N(0, 1/fan_in)
      uniform * glorot * jnp.sqrt(3.0),     # xavier uniform: U(-a, a), a = sqrt(6 / fans)
      normal * glorot,                      # xavier normal: N(0, 2 / fans)
  ])
  return candidates[initializer]


# Compiled once per model: eagerly, its ~100 small ops compile one by one (20 s for CNN-s).
@functools.partial(jax.jit, static_argnums=0)
def init_variables(model: Model, key: jax.Array, initializer: jax.Array | int = 3) -> dict[str, Any]:
  """Returns fresh variables of one member: ``{'params', 'batch_stats'}``.

  Every ``kernel`` is drawn from the initializer family with index
  ``initializer`` (may be traced, so a vmapped population mixes families);
  biases of Conv/Dense layers start at ``model.bias_init``; BatchNorm starts at
  scale 1, bias 0.
  """
  dummy = jnp.zeros((1, *model.input_shape), jnp.float32)
  variables = model.module.init(jax.random.PRNGKey(0), dummy, activation=0,
                                dropout_rate=0.0, train=False)
  flat = traverse_util.flatten_dict(variables["params"])
  new_flat = {}
  for index, (path, value) in enumerate(sorted(flat.items())):
    if path[-1] == "kernel":
      new_flat[path] = _draw_kernel(jax.random.fold_in(key, index), value.shape, initializer)
    elif path[-1] == "bias" and path[:-1] + ("kernel",) in flat:
      new_flat[path] = jnp.full(value.shape, model.bias_init, value.dtype)
    else:
      new_flat[path] = value
  return {"params": traverse_util.unflatten_dict(new_flat),
          "batch_stats": variables.get("batch_stats", {})}


def apply_model(model: Model, variables: dict[str, Any], images: jax.Array,
                activation: jax.Array | int, dropout_rate: jax.Array | float = 0.0,
                dropout_key: jax.Array | None = None, train: bool = False,
                noise_key: jax.Array | None = None) -> tuple[jax.Array, dict[str, Any]]:
  """Runs one member on a batch of images.

  ``variables`` holds ``params`` and ``batch_stats``, and may hold a
  ``log_alpha`` collection (sparse variational dropout), whose weight noise
  is drawn from ``noise_key``. Returns ``(logits, batch_stats)``; in training
  mode ``batch_stats`` holds the updated BatchNorm running statistics,
  otherwise it is returned unchanged.
  """
  batch_stats = variables["batch_stats"]
  rngs = {} if noise_key is None else {"noise": noise_key}
  kwargs = dict(activation=activation, dropout_rate=dropout_rate, dropout_key=dropout_key,
                train=train, rngs=rngs)
  if train and batch_stats:
    logits, updates = model.module.apply(variables, images, mutable=["batch_stats"], **kwargs)
    return logits, updates["batch_stats"]
  return model.module.apply(variables, images, **kwargs), batch_stats


def layer_order(model: Model) -> tuple[tuple[str, ...], ...]:
  """The model's modules (paths of names, e.g. ``('BasicBlock_2', 'Conv_1')``) in the order
  its forward pass calls them: network depth, which the parameter tree's alphabetical order
  is not (``BasicBlock_10`` sorts before ``BasicBlock_2``). Traced, not computed."""
  calls: list[tuple[str, ...]] = []

  def record(next_fun, args, kwargs, context):
    path = tuple(context.module.path)
    if path and path not in calls:
      calls.append(path)
    return next_fun(*args, **kwargs)

  def forward(key):
    variables = init_variables(model, key)
    with nn.intercept_methods(record):
      return apply_model(model, variables, jnp.zeros((1, *model.input_shape)), activation=0)

  jax.eval_shape(forward, jax.random.PRNGKey(0))
  return tuple(calls)


def count_parameters(params: Any) -> int:
  """Number of scalars in a parameter pytree."""
  return sum(leaf.size for leaf in jax.tree.leaves(params))

"""A PyTorch ensemble as a researcher writes it by hand: the members of a CNN as the groups
of one grouped ``Conv2d`` per layer (``groups=P``) and one batched matmul per dense layer,
as "packed" and batch ensembles do, optionally compiled with ``torch.compile``.

Member p's input channels are channels ``[p * C, (p + 1) * C)`` of the grouped input, its
filters the output channels ``[p * F, (p + 1) * F)``, so the convolutions of different
members never mix. Every member has its own batch (``x``: [P, B, C, H, W]), its own
weights, and Adam over the stacked tensors is each member's Adam (it is elementwise).
:func:`member_network` gives member p as an ordinary ``nn.Sequential`` holding the same
weights, for checking that the ensemble computes what each member alone computes.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional


class GroupedEnsemble(nn.Module):
  """P members of a CNN (convolutions with optional 2x2 max-pooling, dense layers, tanh),
  trained at once: ``forward(x)`` maps [P, B, C, H, W] to logits [P, B, classes]."""

  def __init__(self, population: int, in_channels: int, size: int, features, kernels, pools,
               dense, classes: int = 10):
    super().__init__()
    self.population, self.pools = population, tuple(pools)
    self.convs = nn.ModuleList()
    for feature, kernel, pool in zip(features, kernels, pools):
      self.convs.append(nn.Conv2d(population * in_channels, population * feature, kernel,
                                  groups=population))
      size = (size - kernel + 1) // (2 if pool else 1)
      in_channels = feature
    inputs = in_channels * size * size
    self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
    for width in (*dense, classes):
      bound = inputs ** -0.5  # nn.Linear's default initialisation, per member
      self.weights.append(nn.Parameter(torch.empty(population, inputs, width).uniform_(
          -bound, bound)))
      self.biases.append(nn.Parameter(torch.empty(population, 1, width).uniform_(-bound, bound)))
      inputs = width

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    population, batch = x.shape[:2]
    h = x.transpose(0, 1).reshape(batch, population * x.shape[2], *x.shape[3:])
    for conv, pool in zip(self.convs, self.pools):
      h = conv(h)
      if pool:
        h = functional.max_pool2d(h, 2)
      h = torch.tanh(h)
    h = h.reshape(batch, population, -1).transpose(0, 1)  # [P, B, features], NCHW order
    last = len(self.weights) - 1
    for index, (weight, bias) in enumerate(zip(self.weights, self.biases)):
      h = torch.baddbmm(bias, h, weight)
      if index < last:
        h = torch.tanh(h)
    return h


def ensemble_loss(model: GroupedEnsemble, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
  """The sum over members of each member's mean cross-entropy (its gradient is each
  member's own)."""
  logits = model(x)
  population, batch = y.shape
  return functional.cross_entropy(logits.reshape(population * batch, -1),
                                  y.reshape(-1)).mul(population)


def member_network(model: GroupedEnsemble, member: int) -> nn.Sequential:
  """Member ``member`` of ``model`` as an ordinary network with a copy of its weights."""
  layers = []
  for conv, pool in zip(model.convs, model.pools):
    out_per, in_per = conv.out_channels // model.population, conv.in_channels // model.population
    single = nn.Conv2d(in_per, out_per, conv.kernel_size)
    rows = slice(member * out_per, (member + 1) * out_per)
    single.weight.data.copy_(conv.weight.data[rows])
    single.bias.data.copy_(conv.bias.data[rows])
    layers += [single] + ([nn.MaxPool2d(2)] if pool else []) + [nn.Tanh()]
  layers.append(nn.Flatten())
  last = len(model.weights) - 1
  for index, (weight, bias) in enumerate(zip(model.weights, model.biases)):
    linear = nn.Linear(*weight.shape[1:])
    linear.weight.data.copy_(weight.data[member].T)
    linear.bias.data.copy_(bias.data[member, 0])
    layers += [linear] + ([nn.Tanh()] if index < last else [])
  return nn.Sequential(*layers)


def training_step(model: GroupedEnsemble, optimizer: torch.optim.Optimizer, compiled: bool):
  """``step(x, y)``: one Adam step of every member (the loss ``torch.compile``d if asked)."""
  loss_fn = torch.compile(ensemble_loss) if compiled else ensemble_loss

  def step(x, y):
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model, x, y)
    loss.backward()
    optimizer.step()
    return loss
  return step

"""The grouped-convolution PyTorch ensemble of the speed benchmark computes, member by
member, what each member alone computes: logits, gradients and an Adam step."""

import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "experiments"))
import torch_grouped  # noqa: E402

CNN_S = dict(features=(8, 6, 4), kernels=(5, 5, 2), pools=(True, True, False), dense=(20,))
P, B = 3, 4


def _ensemble_and_batch():
  torch.manual_seed(0)
  model = torch_grouped.GroupedEnsemble(P, 1, 28, **CNN_S)
  x = torch.randn(P, B, 1, 28, 28)
  y = torch.randint(0, 10, (P, B))
  return model, x, y


def test_each_member_computes_what_it_computes_alone():
  model, x, y = _ensemble_and_batch()
  logits = model(x)
  assert logits.shape == (P, B, 10)
  for member in range(P):
    alone = torch_grouped.member_network(model, member)(x[member])
    np.testing.assert_allclose(logits[member].detach(), alone.detach(), rtol=1e-5, atol=1e-6)


def test_one_adam_step_of_the_ensemble_is_each_members_own():
  model, x, y = _ensemble_and_batch()
  members = [torch_grouped.member_network(model, member) for member in range(P)]
  step = torch_grouped.training_step(model, torch.optim.Adam(model.parameters(), 1e-2),
                                     compiled=False)
  step(x, y)
  for member, network in enumerate(members):
    optimizer = torch.optim.Adam(network.parameters(), 1e-2)
    torch.nn.functional.cross_entropy(network(x[member]), y[member]).backward()
    optimizer.step()
    after = torch_grouped.member_network(model, member)
    for mine, theirs in zip(after.parameters(), network.parameters()):
      np.testing.assert_allclose(mine.detach(), theirs.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # torch.compile generates and builds C++ (tens of seconds)
def test_the_compiled_step_matches_the_eager_one():
  model, x, y = _ensemble_and_batch()
  twin = torch_grouped.GroupedEnsemble(P, 1, 28, **CNN_S)
  twin.load_state_dict(model.state_dict())
  eager = torch_grouped.training_step(model, torch.optim.Adam(model.parameters(), 1e-2), False)
  compiled = torch_grouped.training_step(twin, torch.optim.Adam(twin.parameters(), 1e-2), True)
  for _ in range(2):
    eager(x, y)
    compiled(x, y)
  for mine, theirs in zip(model.parameters(), twin.parameters()):
    np.testing.assert_allclose(mine.detach(), theirs.detach(), rtol=1e-4, atol=1e-5)

"""Config fields that several methods read, and the checks methods build theirs from.

A method lists the fields it reads in its :func:`jaxsparse.sparsify.register`
call; fields shared between methods are declared once here so that their
defaults and checks agree.
"""

from __future__ import annotations

from typing import Any

from jaxsparse import masks
from jaxsparse.errors import invalid_field
from jaxsparse.schema import Field, at_least, finite, one_of, positive  # noqa: F401 (re-exported)


def _epoch_within_training(value, config) -> str | None:
  if value != int(value):
    return "use whole epochs"
  num_epochs = config.training.num_epochs
  return None if 0 <= value <= num_epochs else f"use 0 to training.num_epochs ({num_epochs})"


def _whole_epochs(value, config) -> str | None:
  del config
  return None if value == int(value) else "use whole epochs"


START_EPOCH = Field(0, "the method starts acting at this epoch (prune, grow, warm up)",
                    _epoch_within_training)
END_EPOCH = Field(0, "... and ends here (gradual and iterative pruning, GaP, VD's warm-up)",
                  _whole_epochs)
SCOPE = Field("layerwise", "'layerwise' (each tensor at the target), 'global' (one threshold) "
              "or 'erk'", one_of(masks.SCOPES))
NUM_ROUNDS = Field(1, "rounds of prune -> fine-tune (iterative) or grow -> prune (GaP)",
                   at_least(1, "use 1 or more"))
TRAINABLE_LEARNING_RATE_SCALE = Field(
    1.0, "learning rate of the method's own variables, as a multiple of the member's",
    positive("use a positive multiple of the member's learning rate, e.g. 10"))


def setting_values(config, field: str) -> list[tuple[str, Any]]:
  """Every value members take for ``config.sparsify.<field>``, each with where it is set.

  The swept values of ``config.population.method_grid.<field>`` if the
  population sweeps it, else the one value of ``config.sparsify``.
  """
  swept = tuple(config.population.method_grid.get(field, ()))
  if swept:
    return [(f"population.method_grid.{field}", value) for value in swept]
  return [(f"sparsify.{field}", config.sparsify[field])]


def check_epoch_window(config) -> None:
  """start_epoch <= end_epoch <= training.num_epochs, for every member's values."""
  num_epochs = config.training.num_epochs
  for _, start in setting_values(config, "start_epoch"):
    for where, end in setting_values(config, "end_epoch"):
      if not start <= end <= num_epochs:
        raise invalid_field(where, end, f"need start_epoch ({start}) <= end_epoch <= "
                            f"training.num_epochs ({num_epochs})")

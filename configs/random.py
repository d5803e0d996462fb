"""Static sparse training: random masks at 50 / 80 / 90 / 95 % sparsity, fixed from the start.

The baseline GaP and the learned masks must beat. ``--config.sparsify.start_epoch=2``
turns it into random pruning of a network trained densely for 2 epochs, then
fine-tuned.
"""

from jaxsparse.config import method_study_config


def get_config():
  config = method_study_config("random")
  config.sparsify.start_epoch = 0
  return config

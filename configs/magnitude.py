"""Gradual magnitude pruning (Zhu & Gupta) of a CNN-s population on Fashion-MNIST.

One population of 4 target sparsities (50, 80, 90, 95 %) x 2 seeds, trained
from scratch with tanh / Adam 1e-3: dense for 1 epoch, pruned gradually
(layer-wise, masks recomputed every 100 steps) during epochs 1-3, then
fine-tuned at the target for the last epoch. ``--config.sparsify.scope=erk``
or ``=global`` changes how the budget is spread over the layers.
"""

from jaxsparse.config import method_study_config


def get_config():
  config = method_study_config("magnitude")
  config.sparsify.schedule = "gradual"
  config.sparsify.scope = "layerwise"
  config.sparsify.start_epoch = 1
  config.sparsify.end_epoch = 3
  config.sparsify.update_every = 100
  return config

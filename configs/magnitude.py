"""Gradual magnitude pruning (Zhu & Gupta) of a CNN-s population on Fashion-MNIST.

One population of 4 target sparsities (50, 80, 90, 95 %) x 2 seeds, trained
from scratch with tanh / Adam 1e-3: dense for 1 epoch, pruned gradually
(layer-wise, masks recomputed every 100 steps) during epochs 1-3, then
fine-tuned at the target for the last epoch.
"""

from jaxsparse.config import default_config


def get_config():
  config = default_config()
  config.population.grid.sparsity = (0.5, 0.8, 0.9, 0.95)
  config.population.grid.activation = ("tanh",)
  config.population.grid.optimizer = ("adam",)
  config.population.grid.learning_rate = (1e-3,)
  config.population.num_seeds = 2
  config.training.num_epochs = 4
  config.sparsify.method = "magnitude"
  config.sparsify.schedule = "gradual"
  config.sparsify.scope = "layerwise"
  config.sparsify.start_epoch = 1
  config.sparsify.end_epoch = 3
  config.sparsify.update_every = 100
  return config

"""Sparse variational dropout of CNN-s, trained from scratch on Fashion-MNIST.

Sparsity is an outcome: 2 seeds x 2 learning rates, KL weight 500 (the
public model-zoo code's 0.01 per summed KL, scaled by the 50,000 training
examples), warmed up linearly over the first 2 of 4 epochs. Sweep
``--config.sparsify.kl_weight`` to trade accuracy for sparsity.
"""

from jaxsparse.config import method_study_config


def get_config():
  config = method_study_config("variational_dropout")
  config.population.grid.sparsity = (0.0,)
  config.population.grid.learning_rate = (1e-3, 3e-3)
  config.sparsify.kl_weight = 500.0
  config.sparsify.start_epoch = 0
  config.sparsify.end_epoch = 2
  return config

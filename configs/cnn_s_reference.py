"""A reference point: CNN-s with tanh, Adam 1e-3, batch 32, 6 epochs on Fashion-MNIST.

Two members that differ only in the initializer: 'fan_in_uniform' (PyTorch's
default layer init, U(+-1/sqrt(fan_in))) and Kaiming uniform. A plain implementation
reaches about 0.85 test accuracy here.
"""

from jaxsparse.config import default_config


def get_config():
  config = default_config()
  config.population.grid.activation = ("tanh",)
  config.population.grid.optimizer = ("adam",)
  config.population.grid.learning_rate = (1e-3,)
  config.population.grid.initializer = ("fan_in_uniform", "kaiming_uniform")
  config.training.num_epochs = 6
  config.training.batch_size = 32
  return config

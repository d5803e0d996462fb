"""A dense zoo: 32 CNN-s members on Fashion-MNIST (the foundation's main job).

A reduced version of the model-zoo hyperparameter grid (Schürholt et al. 2022;
docs/twins.md): 4 activations x 2 optimizers x 2 learning rates x 2 seeds, uniform /
Kaiming init fixed, no dropout or weight decay, batch 32, 2 epochs. Sized to
finish in under 10 minutes on 2 CPU cores.
"""

from jaxsparse.config import default_config


def get_config():
  config = default_config()
  config.model.name = "cnn_s"
  config.data.name = "fashion_mnist"
  grid = config.population.grid
  grid.activation = ("tanh", "relu", "sigmoid", "gelu")
  grid.optimizer = ("adam", "sgd")
  grid.learning_rate = (1e-3, 1e-4)
  grid.initializer = ("kaiming_uniform",)
  config.population.num_seeds = 2
  config.training.num_epochs = 2
  config.training.batch_size = 32
  return config

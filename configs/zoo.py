"""A dense zoo: 32 CNN-s members on Fashion-MNIST, a corner of the hyperparameter zoo.

The public hyperparameter zoo's grid (configs/zoo_hyperparameter.py;
docs/twins.md) reduced to 4 activations x 2 optimizers x 2 learning rates x 2
seeds, Kaiming-uniform init, no dropout or weight decay, batch 32, 2 epochs.
Sized to finish in under 10 minutes on 2 CPU cores.
"""

import os

from jaxsparse.config import load_config_file


def get_config():
  config = load_config_file(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                         "zoo_hyperparameter.py"))
  grid = config.population.grid
  grid.dropout_rate = (0.0,)
  grid.initializer = ("kaiming_uniform",)
  grid.weight_decay = (0.0,)
  config.population.num_seeds = 2
  config.population.chunk_size = 0
  config.training.num_epochs = 2
  config.training.batch_size = 32
  return config

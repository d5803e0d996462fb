"""The public "hyperparameter" zoo of Fashion-MNIST: 256 configurations x 10 seeds of CNN-s.

The grid of the public model-zoo generator (Schürholt et al. 2022;
docs/twins.md): activation in {tanh, relu, sigmoid, gelu}, dropout in {0,
0.5}, init in {uniform, normal, kaiming_uniform, kaiming_normal} (the zoo's
``torch.nn.init`` defaults: U(0, 1), N(0, 1), Kaiming with a = 0 and fan_in;
biases 0.01), optimizer in {adam, sgd with momentum 0.9}, learning rate in
{1e-3, 1e-4}, weight decay in {1e-3, 1e-4} (coupled L2, reaching the weights
only); batch 10, 50 epochs, 50,000 / 10,000 train / validation split, data
normalised with mean 0.5 and std 0.5. 2,560 members: a GPU or TPU job
(docs/twins.md gives the projection); configs/default.py trains a 16-member
corner of it.
"""

from jaxsparse.config import default_config


def get_config():
  config = default_config()
  config.model.name = "cnn_s"
  config.data.name = "fashion_mnist"
  grid = config.population.grid
  grid.activation = ("tanh", "relu", "sigmoid", "gelu")
  grid.dropout_rate = (0.0, 0.5)
  grid.initializer = ("uniform", "normal", "kaiming_uniform", "kaiming_normal")
  grid.optimizer = ("adam", "sgd")
  grid.learning_rate = (1e-3, 1e-4)
  grid.weight_decay = (1e-3, 1e-4)
  grid.momentum = (0.9,)
  config.population.num_seeds = 10
  config.population.chunk_size = 256   # bounds the working set of 2,560 members
  config.training.num_epochs = 50
  config.training.batch_size = 10
  return config

"""The seed study at the paper's scale: the Fashion-MNIST hyperparameter zoo and its twins.

The model-zoo grid of Schürholt et al. (Schürholt et al. 2022; docs/twins.md): 4
activations x 2 dropout rates x 4 initializers x 2 optimizers x 2 learning
rates x 2 weight decays = 256 configurations x 10 seeds = 2,560 CNN-s
members, 50 epochs at batch 10. Twins of every member: one-shot layer-wise
magnitude pruning at 10 to 95 % and sparse variational dropout at four KL
weights, each trained 25 epochs from the member's final checkpoint with its
own optimizer (the public code's VD protocol: log sigma^2 from -10, KL
warmed up linearly over the first 10 epochs). Not run in CI: see docs/results.md
for its projected run time (experiments/time_paper_epoch.py).
"""

from jaxsparse.config import default_config


def get_config():
  config = default_config()
  config.job = "twins"
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

  config.twins.methods = ("magnitude", "variational_dropout")
  config.twins.sparsities = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
  config.twins.kl_weights = (1.0, 10.0, 100.0, 1000.0)
  config.twins.num_epochs = 25
  config.sparsify.schedule = "one_shot"
  config.sparsify.scope = "layerwise"
  config.sparsify.start_epoch = 0
  config.sparsify.end_epoch = 10
  return config

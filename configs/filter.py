"""L1 filter pruning of ResNet-20 on Fashion-MNIST (structured; see experiments/structured_vs_thin.py).

One population of 4 channel sparsities (0 = the unpruned reference, 25, 50,
75 % of the inner channels of every residual block) trained with ReLU / Adam
1e-3 for 2 epochs, pruned by filter L1 norm, then fine-tuned for 1 epoch, on
10,000 training examples to keep it CPU-sized. Compare with width-scaled
ResNet-20s (ThinResNet): ``--config.sparsify.method=none --config.model.width=0.5``.
"""

from jaxsparse.config import default_config


def get_config():
  config = default_config()
  config.model.name = "resnet20"
  config.data.train_examples = 10_000
  config.population.grid.sparsity = (0.0, 0.25, 0.5, 0.75)
  config.population.grid.activation = ("relu",)
  config.population.grid.optimizer = ("adam",)
  config.population.grid.learning_rate = (1e-3,)
  config.training.num_epochs = 3
  config.training.batch_size = 32
  config.sparsify.method = "filter"
  config.sparsify.start_epoch = 2
  return config

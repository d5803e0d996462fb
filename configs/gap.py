"""Cyclic grow-and-prune (GaP) of CNN-s at 50 / 80 / 90 / 95 % sparsity.

From a random mask at the target: 6 rounds of half an epoch over epochs 0-3,
each making one of 3 partitions (Conv_0+Conv_1 | Conv_2+Dense_0 | Dense_1)
dense and pruning it back by magnitude when the next grows; the last epoch
fine-tunes the final sparse network.
"""

from jaxsparse.config import method_study_config


def get_config():
  config = method_study_config("gap")
  config.sparsify.start_epoch = 0
  config.sparsify.end_epoch = 3
  config.sparsify.num_rounds = 6
  config.sparsify.num_partitions = 3
  return config

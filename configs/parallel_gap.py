"""Parallel grow-and-prune (GaP) of CNN-s at 50 / 80 / 90 / 95 % sparsity.

Every member trains as 3 copies (24 population members in all): from a random
mask at the target, 3 rounds of 1 epoch in which copy i keeps partition i
(Conv_0+Conv_1 | Conv_2+Dense_0 | Dense_1) dense; after each round every copy
prunes its partition back by magnitude and the member is reassembled from
them; the last epoch fine-tunes the reassembled sparse network.
"""

from jaxsparse.config import method_study_config


def get_config():
  config = method_study_config("parallel_gap")
  config.sparsify.start_epoch = 0
  config.sparsify.end_epoch = 3
  config.sparsify.num_rounds = 3
  config.sparsify.num_partitions = 3
  return config

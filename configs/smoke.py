"""The quick start: a small population end to end in well under 2 minutes on 2 CPU cores.

Four CNN-s members (2 seeds x magnitude-pruning targets 50 % and 90 %) on a
slice of Fashion-MNIST (2,000 training, 1,000 validation and the full 10,000
test images), pruned gradually during one epoch. Everything a full run
writes (checkpoints, metrics, members.csv, predictions, TensorBoard) appears
under the workdir, so it also checks an installation. The fast test tier runs
this config (tests/test_smoke.py).
"""

from jaxsparse.config import method_study_config


def get_config():
  config = method_study_config("magnitude")
  config.population.grid.sparsity = (0.5, 0.9)
  config.population.num_seeds = 2
  config.data.validation_size = 1_000
  config.data.train_examples = 2_000
  config.training.num_epochs = 1
  config.sparsify.schedule = "gradual"
  config.sparsify.start_epoch = 0
  config.sparsify.end_epoch = 1
  config.sparsify.update_every = 10
  return config

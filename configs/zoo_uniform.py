"""The public "uniform" zoo of Fashion-MNIST: CNN-s members that differ only in their seed.

The recipe of the public model-zoo generator (``train_zoo_f_mnist_uniform.py``;
Schürholt et al. 2022; docs/twins.md): CNN-s, tanh, init ``uniform`` (U(0, 1),
``torch.nn.init.uniform_`` with its defaults; biases 0.01), no dropout, Adam
3e-4, no weight decay, batch 10, 50 epochs, seeds 1 to 1,000, 50,000 / 10,000
train / validation split of the training set, data normalised with mean 0.5
and std 0.5. The public variational-dropout twins were made from this zoo
(its MNIST version): ``configs/twins_paper.py --config.zoo=uniform``.

On this 2-core CPU one member-epoch at batch 10 (5,000 steps) costs about
6 s of a 12-member population's wall time (the protocol study's zoo, 12 seeds
x 50 epochs, took 60 min on 2026-12-05 beside other jobs: docs/results.md), so
the full zoo (1,000 x 50 member-epochs, about 3.5 CPU-days) is a GPU job;
``--config.population.num_seeds=12`` is a laptop-sized sample of it.
"""

from jaxsparse.config import default_config


def get_config():
  config = default_config()
  config.model.name = "cnn_s"
  config.data.name = "fashion_mnist"
  grid = config.population.grid
  grid.activation = ("tanh",)
  grid.initializer = ("uniform",)
  grid.dropout_rate = (0.0,)
  grid.optimizer = ("adam",)
  grid.learning_rate = (3e-4,)
  grid.weight_decay = (0.0,)
  config.population.num_seeds = 1000
  config.population.first_seed = 1
  config.population.chunk_size = 250    # bounds the working set of 1,000 members
  config.training.num_epochs = 50
  config.training.batch_size = 10
  return config

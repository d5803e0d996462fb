"""The main job (``make run``): a CNN-s zoo on Fashion-MNIST and its sparsified twins.

The zoo: 16 members, a reduced model-zoo grid (Schürholt et al. 2022; docs/twins.md) of 4
activations x 2 optimizers (Adam, SGD-momentum; learning rate 1e-3) x 2 seeds,
Kaiming-uniform init, trained for 2 epochs at batch 32. Its twins: every
member pruned by magnitude (one-shot, layer-wise) to 50, 80, 90 and 95 %
and fine-tuned, and every member under sparse variational dropout at KL weights 100
and 1000 each fine-tuned for 1 epoch on 5,000 training examples. Then the report
(report.md, summary.json, figures/). Sized to finish within 15 minutes on
2 CPU cores from a fresh clone; configs/twins_paper.py is the paper's scale.
"""

from jaxsparse.config import default_config


def get_config():
  config = default_config()
  config.job = "twins"
  config.model.name = "cnn_s"
  config.data.name = "fashion_mnist"
  grid = config.population.grid
  grid.activation = ("tanh", "relu", "sigmoid", "gelu")
  grid.optimizer = ("adam", "sgd")
  grid.learning_rate = (1e-3,)
  grid.initializer = ("kaiming_uniform",)
  config.population.num_seeds = 2
  config.training.num_epochs = 2
  config.training.batch_size = 32

  config.twins.methods = ("magnitude", "variational_dropout")
  config.twins.sparsities = (0.5, 0.8, 0.9, 0.95)
  # From a sweep on this zoo (fine-tuning on 10,000 examples, KL weight 1 / 10 /
  # 100 / 1000 -> 5 / 19 / 55 / 90 % mean sparsity; docs/results.md).
  config.twins.kl_weights = (100.0, 1000.0)
  config.twins.num_epochs = 1
  config.twins.train_examples = 5_000
  # Twin settings: magnitude prunes once at the start of fine-tuning; VD warms
  # its KL term up over the fine-tuning epoch, with its log sigma^2 learning 30x
  # faster than the weights (from -10, it would barely move in 156 steps).
  config.sparsify.schedule = "one_shot"
  config.sparsify.scope = "layerwise"
  config.sparsify.start_epoch = 0
  config.sparsify.end_epoch = 1
  config.sparsify.trainable_learning_rate_scale = 30.0
  return config

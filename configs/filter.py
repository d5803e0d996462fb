"""L1 filter pruning of ResNet-20 on Fashion-MNIST with a modern recipe
(experiments/structured_vs_thin.py compares it with width-scaled ResNet-20s).

One population: 4 channel sparsities (0 = the unpruned reference, 25, 50 and
75 % of the inner channels of every residual block) x 3 seeds. The recipe,
shared by both arms of the comparison (the elements Tessier et al. 2023 call
modern that jaxsparse has; no mixup or cutmix): SGD with Nesterov momentum
0.9, peak rate 0.05 at batch 64 (the CIFAR ResNets' 0.1 at batch 128, scaled
linearly), half an epoch of linear warm-up and then cosine decay to 0, label
smoothing 0.1, weight decay 5e-4 on kernels only (none on biases and
BatchNorm), ReLU, Kaiming-normal initialisation. 4 epochs on 8,000 training
examples, to keep it CPU-sized: 2 at full width, then pruning by filter L1
norm, then 2 of fine-tuning with one schedule over all 4 (the pruned arm's
pre-training counts against its budget). Compare with one width:
``--config.sparsify.method=none --config.population.grid.sparsity='(0.0,)'
--config.model.width=0.5``.
"""

from jaxsparse.config import default_config


def get_config():
  config = default_config()
  config.model.name = "resnet20"
  config.data.train_examples = 8_000
  config.data.validation_size = 5_000
  config.population.num_seeds = 3
  config.population.grid.sparsity = (0.0, 0.25, 0.5, 0.75)
  config.population.grid.activation = ("relu",)
  config.population.grid.initializer = ("kaiming_normal",)
  config.population.grid.optimizer = ("sgd",)
  config.population.grid.learning_rate = (0.05,)
  config.population.grid.momentum = (0.9,)
  config.population.grid.weight_decay = (5e-4,)
  config.training.num_epochs = 4
  config.training.batch_size = 64
  config.training.evaluate_validation = False
  config.training.curve_test_examples = 1_000  # the whole test set at the last epoch only
  config.training.lr_schedule = "warmup_cosine"
  config.training.warmup_epochs = 0.5
  config.training.label_smoothing = 0.1
  config.training.decay_biases_and_norms = False
  config.training.nesterov = True
  config.sparsify.method = "filter"
  config.sparsify.start_epoch = 2
  return config

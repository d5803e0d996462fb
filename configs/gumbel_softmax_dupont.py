"""Gumbel-softmax subnetworks as Dupont et al. (ICIP 2022) run them, on Fashion-MNIST.

The protocol of the paper's public code (N0ciple/ASLP; docs/methods.md):
weights frozen at Kaiming-normal N(0, 2/fan_in) (its layers call
``kaiming_normal_(nonlinearity='relu', mode='fan_in')``, whatever its
``init_scheme`` comment says), ReLU, a logit per weight starting at 0 (keep
probability 1/2), the temperature fixed at 1, no sparsity penalty (sparsity
is an outcome), SGD with momentum 0.9 and no weight decay: the logits at
learning rate 50, the per-layer scales at 1e-3 (the member's rate is the
scales', the logits' is 5e4 times it), batch 256. ``configs/gumbel_softmax.py``
is jaxsparse's own variant (annealed temperature, a penalty towards each
target, Adam).

Conv-4 by default; ``get_config('conv2')`` (``--config=...:conv2``) for Conv-2.
One difference remains: the public code's layers have biases (frozen at
U(+-1/sqrt(fan_in))), jaxsparse's Conv-n none (as in Ramanujan et al.).
Both have millions of weights, enough for supermasks (the 2,416-weight CNN-s is
not). ``--config.sparsify.rescale=False`` switches the learned rescaling off.
The paper trains up to 1,000 epochs with early stopping on CIFAR-10; 20 epochs
here are a CPU-sized start (experiments/supermasks.py sizes it down further).
"""

from jaxsparse.config import default_config


def get_config(model: str = "conv4"):
  config = default_config()
  config.model.name = model
  config.population.num_seeds = 3
  config.population.grid.sparsity = (0.0,)  # no target: sparsity is an outcome
  config.population.grid.activation = ("relu",)
  config.population.grid.initializer = ("kaiming_normal",)
  config.population.grid.optimizer = ("sgd",)
  config.population.grid.momentum = (0.9,)
  config.population.grid.learning_rate = (1e-3,)
  config.population.grid.weight_decay = (0.0,)
  config.training.batch_size = 256
  config.training.num_epochs = 20
  config.sparsify.method = "gumbel_softmax"
  config.sparsify.initial_logit = 0.0
  config.sparsify.temperature_start = 1.0
  config.sparsify.temperature_end = 1.0
  config.sparsify.sparsity_penalty = 0.0
  config.sparsify.rescale = True
  config.sparsify.trainable_learning_rate_scale = 5e4  # logits: 5e4 x 1e-3 = 50
  config.sparsify.scales_learning_rate_scale = 1.0     # scales: 1e-3
  return config

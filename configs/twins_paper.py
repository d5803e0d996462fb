"""The seed study at the paper's scale: a public Fashion-MNIST zoo and its sparsified twins.

``--config=configs/twins_paper.py`` uses the hyperparameter zoo
(configs/zoo_hyperparameter.py: 256 configurations x 10 seeds = 2,560 CNN-s
members, 50 epochs at batch 10, the zoo's initializers);
``--config=configs/twins_paper.py:uniform`` the "uniform" zoo the public VD
twins were made from (configs/zoo_uniform.py: 1,000 seeds of one recipe).
Twins of every member, from its final (epoch-50) checkpoint, following the
public protocol (docs/twins.md): variational dropout trained 25 epochs with
the member's own optimizer and learning rate (log sigma^2 from -10, KL
warmed up linearly over the first 10 epochs), magnitude pruning at 10 to 95 %,
layer-wise and global, fine-tuned 25 epochs; every level of a method is ONE
population (10 x 2,560 members for a magnitude scope). Not run in CI:
docs/twins.md gives its cost per member-epoch on a CPU and the projection
(experiments/time_paper_epoch.py).
"""

import os

from jaxsparse.config import load_config_file


def get_config(zoo: str = "hyperparameter"):
  if zoo not in ("hyperparameter", "uniform"):
    raise ValueError(f"configs/twins_paper.py:{zoo}: use ':hyperparameter' or ':uniform'")
  config = load_config_file(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                         f"zoo_{zoo}.py"))
  config.job = "twins"
  # The public protocol only. To compare VD whose log-alpha clip passes gradients
  # (a departure, as in the main job), add "variational_dropout_straight_through"
  # and its levels, config.twins.straight_through_kl_weights.
  config.twins.methods = ("magnitude", "variational_dropout")
  config.twins.scopes = ("layerwise", "global")
  config.twins.sparsities = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
  # Sparsity is VD's outcome; these weights of the data-scaled KL term
  # (jaxsparse.sparsify.variational_dropout) span weak to strong pruning.
  # If the public code's "KL weight 0.01" multiplies a summed KL next to a
  # batch-mean cross-entropy, it is 0.01 x 50,000 = 500 in these units.
  config.twins.kl_weights = (10.0, 30.0, 100.0, 300.0, 500.0, 1000.0)
  config.twins.num_epochs = 25
  config.sparsify.schedule = "one_shot"
  config.sparsify.start_epoch = 0
  config.sparsify.end_epoch = 10
  # The public code trains log sigma^2 with the member's own optimizer and rate.
  config.sparsify.trainable_learning_rate_scale = 1.0
  return config

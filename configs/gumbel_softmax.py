"""Gumbel-softmax subnetworks of a frozen random CNN-s at 50 / 80 / 90 / 95 % target sparsity.

Only the mask logits (and per-layer scales) learn, with Adam 0.1; the
temperature anneals from 1 to 0.1; a penalty of weight 5 pulls the expected
kept fraction of every layer to each member's target (at 50 the penalty
overwhelms the task loss at 80 % and above and the network dies). ``--config.sparsify.rescale=False``
measures the effect of the rescaling, ``--config.sparsify.sparsity_penalty=0``
leaves the sparsity to training, and
``--config.population.method_grid.temperature_end='(0.5, 0.1, 0.02)'`` gives
every member each final temperature (one population, one program).
"""

from jaxsparse.config import method_study_config


def get_config():
  config = method_study_config("gumbel_softmax")
  config.population.grid.learning_rate = (0.1,)
  config.sparsify.temperature_start = 1.0
  config.sparsify.temperature_end = 0.1
  config.sparsify.rescale = True
  config.sparsify.sparsity_penalty = 5.0
  return config

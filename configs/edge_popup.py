"""Edge-popup supermasks of a frozen random CNN-s at 50 / 80 / 90 / 95 % sparsity.

The scores learn with Adam 0.01; the mask keeps the top |score| of each tensor.
"""

from jaxsparse.config import method_study_config


def get_config():
  config = method_study_config("edge_popup")
  config.population.grid.learning_rate = (0.01,)
  return config

"""Grid expansion into a member table and per-member hyperparameter arrays."""

import numpy as np

from jaxsparse import population
from jaxsparse.config import default_config

# The Model-Zoo "hyperparameter" grid of Schürholt et al. 2022 ("Model Zoos").
ZOO_GRID = dict(activation=("tanh", "relu", "sigmoid", "gelu"), dropout_rate=(0.0, 0.5),
                initializer=("uniform", "normal", "kaiming_uniform", "kaiming_normal"),
                optimizer=("adam", "sgd"), learning_rate=(1e-3, 1e-4),
                weight_decay=(1e-3, 1e-4), momentum=(0.9,))


def test_model_zoo_grid_expands_to_2560_members():
  table = population.member_table(ZOO_GRID, num_seeds=10)
  assert len(table) == 2560
  assert table["configuration"].nunique() == 256
  assert list(table["member"]) == list(range(2560))
  # Every configuration appears once per seed.
  assert (table.groupby("configuration")["seed"].apply(sorted).apply(list) ==
          [list(range(10))] * 256).all()
  assert not table.duplicated(subset=[*population.GRID_FIELDS, "seed"]).any()


def test_hyperparameter_arrays_follow_the_table():
  table = population.member_table(ZOO_GRID, num_seeds=2, first_seed=7)
  hyper = population.member_hyperparameters(table)
  assert hyper.seed.shape == (len(table),)
  assert set(np.asarray(hyper.seed)) == {7, 8}
  for field, choices in population.CATEGORICAL_FIELDS.items():
    names = [choices[i] for i in np.asarray(getattr(hyper, field))]
    assert names == list(table[field])
  np.testing.assert_allclose(hyper.learning_rate, table["learning_rate"], rtol=1e-7)
  np.testing.assert_allclose(hyper.dropout_rate, table["dropout_rate"])


def test_default_config_is_one_member():
  config = default_config()
  table = population.member_table(config.population.grid, config.population.num_seeds)
  assert len(table) == 1

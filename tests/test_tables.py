"""load_study: one tidy row per (run, member) of a tiny twins study, checked against the
run's own files and scikit-learn."""

import os

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from jaxsparse import metrics, tables, twins

from conftest import make_tiny_study_config, random_dataset

pytestmark = pytest.mark.slow  # a whole (tiny) study: about a minute


@pytest.fixture(scope="module")
def study(tmp_path_factory):
  config = make_tiny_study_config(sparsities=(0.5, 0.9), kl_weights=(500.0,),
                                  scopes=("layerwise",))
  config.twins.num_epochs = 1
  workdir = str(tmp_path_factory.mktemp("study"))
  twins.run_study(config, workdir, random_dataset(num_train=64))
  return workdir


def test_one_row_per_run_and_member_with_levels_and_hyperparameters(study):
  rows = tables.load_study(study)
  originals = 2  # the tiny study's zoo: tanh and ReLU
  counts = rows.groupby("run", sort=False).size().to_dict()
  assert counts == {"original": originals, "magnitude_layerwise": 2 * originals,
                    "variational_dropout": originals}
  for column in ("method", "scope", "seed", "activation", "optimizer", "learning_rate",
                 "target_sparsity", "achieved_sparsity", "test_accuracy", "level_field",
                 "level", "kl_weight", "agreement", "cohen_kappa", "accuracy_drop"):
    assert column in rows, column
  magnitude = rows[rows.run == "magnitude_layerwise"]
  assert (magnitude.level_field == "target_sparsity").all()
  assert sorted(set(magnitude.level)) == [0.5, 0.9]
  np.testing.assert_allclose(magnitude.achieved_sparsity, magnitude.target_sparsity, atol=0.01)
  vd = rows[rows.run == "variational_dropout"]
  assert vd.target_sparsity.isna().all() and (vd.kl_weight == 500.0).all()
  assert (vd.level_field == "kl_weight").all() and (vd.level == 500.0).all()
  # Twins keep their original's hyperparameters.
  original = rows[rows.run == "original"].set_index("member")
  for _, twin in magnitude.iterrows():
    source = original.loc[twin.original_member]
    assert (twin.seed, twin.activation) == (source.seed, source.activation)
    assert twin.accuracy_drop == pytest.approx(source.test_accuracy - twin.test_accuracy)


def test_agreement_and_kappa_match_the_predictions(study):
  rows = tables.load_study(study)
  original = metrics.read_predictions(os.path.join(study, "original"))["predictions"]
  twin = metrics.read_predictions(os.path.join(study, "twins", "magnitude_layerwise"))
  for _, row in rows[rows.run == "magnitude_layerwise"].iterrows():
    ours, theirs = original[row.original_member], twin["predictions"][row.member]
    assert row.agreement == pytest.approx(np.mean(ours == theirs))
    expected = cohen_kappa_score(ours, theirs) if len(set(ours) | set(theirs)) > 1 else 0.0
    assert row.cohen_kappa == pytest.approx(expected, abs=1e-6)
    assert row.test_accuracy == pytest.approx(twin["accuracy"][row.member], abs=1e-6)


def test_a_plain_run_is_one_row_per_member(study):
  rows = tables.load_study(os.path.join(study, "original"))
  assert list(rows.member) == [0, 1] and (rows.run == "original").all()
  assert "level" not in rows

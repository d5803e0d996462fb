"""The protocol study's decision rule (experiments/twins_verdict.py) on made-up trajectories
whose answer is known: VD ahead of magnitude pruning above 80 % by a set margin."""

import json
import os
import sys

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from experiments import twins_verdict  # noqa: E402

MEMBERS = 12
DENSE = 0.8


def _magnitude(run, targets, epochs, accuracy_at):
  """Magnitude twins of ``run`` at ``targets`` for ``epochs``: accuracy_at(target, epoch)."""
  rows = []
  for level_index, target in enumerate(targets):
    for epoch in epochs:
      for member in range(MEMBERS):
        rows.append(dict(run=run, level=target, epoch=epoch,
                         member=level_index * MEMBERS + member, original_member=member,
                         achieved_sparsity=target, agreement=0.9, diverged=False,
                         test_accuracy=accuracy_at(target, epoch) + 0.001 * member))
  return pd.DataFrame(rows)


def _trajectories(margin, noise=0.01):
  """Magnitude loses 1.2 accuracy per unit of sparsity beyond 50 %, recovering with
  epochs; VD twins at 85 and 92 % sit ``margin`` above the 5-epoch curve."""
  rng = np.random.default_rng(0)
  curve = lambda target, epoch: DENSE - 1.2 * max(target - 0.5, 0) * (1.0 if epoch >= 5 else 1.5)
  short = pd.concat([_magnitude(f"magnitude_{scope}", (0.5, 0.6, 0.7, 0.8), range(6), curve)
                     for scope in ("layerwise", "global")])
  long = pd.concat([_magnitude(f"magnitude_{scope}", (0.85, 0.9, 0.95), range(26), curve)
                    for scope in ("layerwise", "global")])
  vd = []
  for arm, sparsity in (("vd_public", 0.85), ("vd_strong", 0.92)):
    rows = pd.DataFrame(dict(
        run="variational_dropout", level=500.0, epoch=25, member=range(MEMBERS),
        original_member=range(MEMBERS), agreement=0.9, diverged=False,
        achieved_sparsity=sparsity + rng.uniform(-0.005, 0.005, MEMBERS)))
    rows["test_accuracy"] = [curve(s, 5) + 0.001 * m + margin + rng.normal(0, noise)
                             for m, s in zip(rows.original_member, rows.achieved_sparsity)]
    vd.append((arm, rows))
  return {"magnitude_5": short, "magnitude_25": long, **dict(vd)}


def _originals():
  return pd.DataFrame(dict(member=range(MEMBERS), test_accuracy=DENSE, diverged=False))


@pytest.mark.parametrize("margin,verdict", [(0.05, "reproduced"), (-0.05, "contradicted"),
                                            (0.0, "unresolved")])
def test_the_decision_rule_finds_the_known_answer(margin, verdict):
  record = twins_verdict._comparisons([], {}, _trajectories(margin), ["vd_public", "vd_strong"],
                                      _originals())[1]
  primary = [row for row in record["comparisons"] if row["comparison"].startswith("primary")]
  assert [row["scope"] for row in primary] == ["layerwise", "global"]
  for row in primary:
    assert row["t"]["n"] == MEMBERS and row["twins"] == 2 * MEMBERS
    assert row["t"]["value"] == pytest.approx(margin, abs=0.01)
    assert row["bca"]["low"] < row["t"]["value"] < row["bca"]["high"]
  if verdict == "unresolved":
    assert all(row["verdict"] in ("unresolved", "not testable") or "fragile" in row["verdict"]
               for row in primary)
  else:
    assert all(row["verdict"] == verdict for row in primary)
    # Holm over the two scopes: the smaller p doubled, the larger kept if above it.
    p = sorted(row["t"]["p_value"] for row in primary)
    assert sorted(row["p_holm"] for row in primary) == pytest.approx(
        [2 * p[0], max(2 * p[0], p[1])])


def test_the_fairness_guard_checks_a_win_against_longer_fine_tuning():
  trajectories = _trajectories(0.05)
  # After 25 epochs magnitude pruning gains 0.1 at 85 to 95 %: VD's win does not survive.
  long = trajectories["magnitude_25"]
  trajectories["magnitude_25"] = long.assign(test_accuracy=np.where(
      long.epoch == 25, long.test_accuracy + 0.1, long.test_accuracy))
  record = twins_verdict._comparisons([], {}, trajectories, ["vd_public", "vd_strong"],
                                      _originals())[1]
  assert set(record["verdict"].values()) == {
      "reproduced at 5 fine-tuning epochs only (not with 25)"}


def test_the_crossover_sparsity_is_where_the_difference_changes_sign():
  pairs = pd.DataFrame(dict(original_member=[0, 0, 1, 1, 2, 2],
                            achieved_sparsity=[0.7, 0.9, 0.7, 0.9, 0.75, 0.85],
                            difference=[-0.1, 0.1, 0.1, 0.2, -0.1, -0.3]))
  crossing, censored = twins_verdict._crossover_sparsity(pairs)
  assert crossing[0] == pytest.approx(0.8) and not censored[0]
  assert crossing[1] == pytest.approx(0.7) and censored[1]  # ahead at its least sparse twin
  assert crossing[2] == pytest.approx(0.85) and censored[2]  # behind at its sparsest twin


def test_the_straight_through_arm_is_compared_but_never_judged(tmp_path):
  """The departure arm (added after the verdict) gets the comparisons, descriptively: no
  Holm, no verdict, and the verdict of record comes from the public-clip arms alone."""
  from experiments import twins_protocol
  from jaxsparse.config import load_config_file
  config = load_config_file(f"{twins_protocol.CONFIG}:vd_straight_through")
  assert tuple(config.twins.methods) == ("variational_dropout_straight_through",)
  assert tuple(config.twins.straight_through_kl_weights) == (5000.0,)
  assert twins_protocol.ORDER.index("vd_straight_through") > twins_protocol.ORDER.index("bridge")
  trajectories = _trajectories(-0.05)  # the public-clip arms lose by 0.05
  ahead = _trajectories(0.05)["vd_strong"]
  trajectories["vd_straight_through"] = ahead.assign(run="variational_dropout_straight_through")
  record = twins_verdict._comparisons([], {}, trajectories, ["vd_public", "vd_strong"],
                                      _originals())[1]
  assert set(record["verdict"].values()) == {"contradicted"}
  departures = [row for row in record["comparisons"]
                if row["comparison"].startswith("departure vd_straight_through")]
  assert len(departures) == 6  # >= 80 % at 5 and 25 epochs, below 80 %; two scopes each
  for row in departures:
    assert row["verdict"] == "descriptive" and row["p_holm"] is None
  at_five = [row for row in departures if "after 5 epochs" in row["comparison"]
             and ">= 80" in row["comparison"]]
  assert [row["t"]["value"] for row in at_five] == pytest.approx([0.05, 0.05], abs=0.01)


def test_per_batch_arms_are_paired_with_the_public_arm_of_their_kl_weight():
  """The per-batch noise arms: the public arms' configs with per-batch sampling; per member
  the departure's final twin minus the public one, a t interval over members (checked
  against scipy), and the equivalence rule written before their run."""
  from scipy import stats
  from experiments import twins_protocol
  from jaxsparse.config import load_config_file
  for arm, public, kl_weight in (("vd_per_batch", "vd_strong", 5000.0),
                                 ("vd_public_per_batch", "vd_public", 500.0)):
    config = load_config_file(f"{twins_protocol.CONFIG}:{arm}")
    assert config.sparsify.weight_noise_sampling == "per_batch"
    assert tuple(config.twins.kl_weights) == (kl_weight,)
    assert twins_verdict.DEPARTURE_ARMS[arm] == public
    assert config.sparsify.to_dict() == {**load_config_file(
        f"{twins_protocol.CONFIG}:{public}").sparsify.to_dict(), "weight_noise_sampling":
        "per_batch"}
  rng = np.random.default_rng(1)
  trajectories = _trajectories(0.0)
  strong, weak = trajectories["vd_strong"], trajectories["vd_public"]
  trajectories["vd_per_batch"] = strong.assign(  # accuracy +0.003, sparsity +0.05
      test_accuracy=strong.test_accuracy + 0.003 + rng.normal(0, 0.001, MEMBERS),
      achieved_sparsity=strong.achieved_sparsity + 0.05 + rng.normal(0, 0.005, MEMBERS))
  trajectories["vd_public_per_batch"] = weak.assign(  # accuracy spread +-0.05 around 0
      test_accuracy=weak.test_accuracy + rng.normal(0, 0.05, MEMBERS))
  table = twins_verdict.paired_departures(trajectories).set_index(["departure", "quantity"])
  assert set(table.index.get_level_values(0)) == {"vd_per_batch", "vd_public_per_batch"}
  outcomes = table.outcome.str.split(" ").str[0].to_dict()
  assert outcomes == {("vd_per_batch", "test_accuracy"): "equivalent",
                      ("vd_per_batch", "achieved_sparsity"): "differs",
                      ("vd_public_per_batch", "test_accuracy"): "inconclusive",
                      ("vd_public_per_batch", "achieved_sparsity"): "equivalent"}
  differences = (trajectories["vd_per_batch"].achieved_sparsity - strong.achieved_sparsity)
  low, high = stats.t.interval(0.95, MEMBERS - 1, differences.mean(), stats.sem(differences))
  row = table.loc[("vd_per_batch", "achieved_sparsity")]
  assert row["mean difference"] == pytest.approx(differences.mean())
  assert row["t 95 % interval"] == f"[{low:.4f}, {high:.4f}]"
  assert row.members == MEMBERS


def test_the_stronger_vd_arm_runs_only_when_vd_strong_ends_below_90_percent(tmp_path,
                                                                             monkeypatch):
  from experiments import twins_protocol
  from jaxsparse.config import load_config_file
  config = load_config_file(f"{twins_protocol.CONFIG}:vd_stronger")
  assert tuple(config.twins.kl_weights) == (50000.0,)
  assert not twins_protocol.stronger_needed(str(tmp_path))  # vd_strong has not finished
  (tmp_path / "vd_strong").mkdir()
  (tmp_path / "vd_strong" / "summary.json").write_text("{}")
  for final, needed in (([0.85, 0.97, 0.8], True), ([0.92, 0.95, 0.9], False)):
    # an early epoch at 0.1 sparsity must not count: only the last epoch does
    rows = pd.DataFrame({"epoch": [3, 3, 3, 25, 25, 25], "achieved_sparsity": [0.1] * 3 + final})
    monkeypatch.setattr(twins_protocol.tables, "load_trajectories", lambda _, rows=rows: rows)
    assert twins_protocol.stronger_needed(str(tmp_path)) is needed


def test_the_figure_draws_every_arm_and_magnitude_at_5_and_25_epochs():
  trajectories = {arm: frame.assign(
      method="magnitude" if arm.startswith("magnitude") else "variational_dropout",
      scope=frame.run.str.removeprefix("magnitude_") if arm.startswith("magnitude") else None)
      for arm, frame in _trajectories(0.05).items()}
  trajectories["vd_per_batch"] = trajectories["vd_strong"].assign(test_accuracy=0.0)
  originals = _originals().assign(run="original", method="none", scope=None,
                                  achieved_sparsity=0.0)
  figure = twins_verdict._figure(trajectories, originals)
  labels = figure.axes[0].get_legend_handles_labels()[1]
  for label in ("dense originals", "variational dropout", "variational dropout (per-batch noise)",
                "magnitude pruning (layerwise, 5 epochs)", "magnitude pruning (global, 25 epochs)"):
    assert label in labels
  # The per-batch twins are a series of their own: the public VD series keeps its accuracy.
  lines = dict(zip(labels, figure.axes[0].get_legend_handles_labels()[0]))
  public = pd.concat([trajectories["vd_public"], trajectories["vd_strong"]])  # one level
  np.testing.assert_allclose(lines["variational dropout"].lines[0].get_ydata().astype(float),
                             [np.median(public.test_accuracy)])
  assert "magnitude pruning (global, 0 epochs)" not in labels


@pytest.mark.slow
def test_the_protocol_study_runs_end_to_end_and_resumes(tmp_path, capsys):
  """``experiments/twins_protocol.py --quick``: every arm trains (3 members of the digits),
  the verdict is written (a verdict per scope, or, as the 2-epoch zoo's VD twins may end at
  chance, the failed sanity check that withholds it), and running the command again trains
  nothing (each finished arm is found) and writes the same record."""
  from experiments import twins_protocol
  workdir = str(tmp_path / "study")
  twins_protocol.main(workdir, list(twins_protocol.ORDER), False, True)
  with open(os.path.join(workdir, "verdict.json")) as file:
    first = json.load(file)
  if first.get("sanity") == "failed":
    assert "verdict" not in first and "comparisons" not in first
  else:
    assert set(first["verdict"]) == {"layerwise", "global"}
  assert {row["scope"] for row in first["magnitude_levels"]} == {"layerwise", "global"}
  assert {row["arm"] for row in first["vd_levels"]} == {
      "vd_public", "vd_strong", "vd_straight_through", "vd_per_batch", "vd_public_per_batch"
  } | ({"vd_stronger"} if os.path.exists(os.path.join(workdir, "vd_stronger")) else set())
  assert len(first["departures"]) == 6  # three departures, accuracy and sparsity each
  assert os.path.exists(os.path.join(workdir, "accuracy_vs_sparsity.png"))
  trained = capsys.readouterr()
  assert "epoch 1/" in trained.out + trained.err  # (the progress lines of training)
  twins_protocol.main(workdir, list(twins_protocol.ORDER), False, True)
  again = capsys.readouterr()
  assert "epoch 1/" not in again.out + again.err  # nothing trained again
  with open(os.path.join(workdir, "verdict.json")) as file:
    assert json.load(file) == first

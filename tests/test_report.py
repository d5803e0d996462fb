"""The study's statistics and claims, from hand-made prediction records."""

import json

import numpy as np
import pytest

from jaxsparse import claims, population, report, twins

P = 8
LEVELS = (0.5, 0.8, 0.9)


def _record(accuracy, sparsity, predictions):
  return {"accuracy": np.asarray(accuracy, float), "sparsity": np.asarray(sparsity, float),
          "predictions": np.asarray(predictions), "labels": np.zeros(40, np.int16),
          "diverged": np.zeros(len(accuracy), bool)}


@pytest.fixture(scope="module")
def study():
  """P members; magnitude twins at 50/80/90 % (all levels in one record, level-major) and VD
  twins at two KL weights reaching about 70 % and 87 %: magnitude is 0.05 ahead of VD's
  accuracy at 70 % and 0.08 behind at 87 % (member-dependent noise added)."""
  rng = np.random.default_rng(0)
  table = population.member_table(dict(activation=("tanh", "relu"), optimizer=("adam",)),
                                  num_seeds=P // 2)
  original_accuracy = rng.uniform(0.6, 0.9, P)
  original_predictions = rng.integers(0, 10, (P, 40))
  original = _record(original_accuracy, np.zeros(P), original_predictions)
  mp_accuracy = np.stack([original_accuracy - drop for drop in (0.0, 0.05, 0.2)])
  mp_sparsity = np.repeat(np.array(LEVELS)[:, None], P, 1)
  flip = lambda fraction: np.where(rng.random((P, 40)) < fraction,
                                   (original_predictions + 1) % 10, original_predictions)
  mp = _record(mp_accuracy.reshape(-1), mp_sparsity.reshape(-1),
               np.concatenate([flip(f) for f in (0.0, 0.05, 0.3)]))
  vd_sparsity = np.stack([np.full(P, 0.7), np.full(P, 0.87)]) + rng.uniform(-0.01, 0.01, (2, P))
  mp_at_vd = np.stack([np.interp(s, LEVELS, a) for s, a in zip(vd_sparsity.T, mp_accuracy.T)]).T
  noise = rng.normal(0, 0.005, (2, P))
  vd_accuracy = mp_at_vd + np.array([[-0.05], [0.08]]) + noise
  vd = _record(vd_accuracy.reshape(-1), vd_sparsity.reshape(-1),
               np.concatenate([flip(0.1), flip(0.2)]))
  runs = [(twins.TwinRun("magnitude", "layerwise", LEVELS, "/s/twins/magnitude_layerwise"),
           mp, np.stack([mp["accuracy"] - 0.01, mp["accuracy"]])),
          (twins.TwinRun("variational_dropout", None, (10.0, 100.0), "/s/twins/vd"), vd, None)]
  summary = report.summarise(table, original, runs)
  return summary, dict(mp_at_vd=mp_at_vd, vd_accuracy=vd_accuracy, vd_sparsity=vd_sparsity)


def _claim(summary, *words):
  rows = [row for row in summary["claims"] if all(word in row["claim"] for word in words)]
  assert len(rows) == 1, [row["claim"] for row in summary["claims"]]
  return rows[0]


def test_entries_are_per_level_with_kappa_and_convergence(study):
  summary, _ = study
  entries = summary["twins"]
  assert [(e["series"], e["level"]) for e in entries] == [
      ("magnitude (layerwise)", 0.5), ("magnitude (layerwise)", 0.8),
      ("magnitude (layerwise)", 0.9), ("variational_dropout", 10.0),
      ("variational_dropout", 100.0)]
  assert entries[0]["cohen_kappa"] == pytest.approx([1.0] * P)
  assert all(len(e["cohen_kappa"]) == P for e in entries)
  assert len(entries[1]["accuracy_per_epoch"]) == 2
  assert entries[3]["accuracy_per_epoch"] == []
  assert all(set(row) >= {"claim", "statistic", "value", "ci_low", "ci_high", "verdict"}
             for row in summary["claims"])


def test_paired_comparison_below_and_above_the_crossover(study):
  summary, truth = study
  below = _claim(summary, "magnitude (layerwise) beats variational_dropout below 80")
  above = _claim(summary, "variational_dropout beats magnitude (layerwise) at or above 80")
  np.testing.assert_allclose(below["value"],
                             np.mean(truth["mp_at_vd"][0] - truth["vd_accuracy"][0]))
  np.testing.assert_allclose(above["value"],
                             np.mean(truth["vd_accuracy"][1] - truth["mp_at_vd"][1]))
  assert below["members"] == above["members"] == P
  assert below["verdict"] == above["verdict"] == "holds"
  assert below["ci_low"] < below["value"] < below["ci_high"]


def test_verdicts_follow_the_interval():
  assert claims.verdict(0.01, 0.03, 0.0, above=True) == "holds"
  assert claims.verdict(-0.03, -0.01, 0.0, above=True) == "fails"
  assert claims.verdict(-0.01, 0.01, 0.0, above=True) == "inconclusive"
  assert claims.verdict(0.001, 0.015, 0.02, above=False) == "holds"
  assert claims.verdict(np.nan, np.nan, 0.0, above=True) == "not tested"


def test_robustness_agreement_and_correlation_claims(study):
  summary, _ = study
  robust = _claim(summary, "magnitude (layerwise) is robust")
  # Below 80 %: only the 50 % level (drop 0) counts.
  assert robust["value"] == pytest.approx(0.0) and robust["verdict"] == "holds"
  kappa = _claim(summary, "magnitude (layerwise) twins agree", "below")
  assert kappa["value"] == pytest.approx(1.0) and kappa["verdict"] == "holds"
  correlation = _claim(summary, "magnitude (layerwise) at target 0.5")
  assert correlation["value"] == pytest.approx(1.0)
  assert _claim(summary, "variational_dropout is robust")["verdict"] in (
      "holds", "fails", "inconclusive")
  assert "| claim |" in report.claims_table(summary)


def test_a_study_whose_members_all_diverged_reports_without_statistics(tmp_path):
  from jaxsparse.config import default_config
  table = population.member_table(dict(activation=("tanh",), optimizer=("adam",)), num_seeds=4)
  predictions = np.zeros((4, 40), int)
  original = dict(_record(np.full(4, 0.5), np.zeros(4), predictions), diverged=np.ones(4, bool))
  twin = dict(_record(np.full(8, 0.4), np.full(8, 0.7), np.zeros((8, 40), int)),
              diverged=np.ones(8, bool))
  run = twins.TwinRun("magnitude", "layerwise", (0.5, 0.9), "/s/twins/magnitude_layerwise")
  config = default_config()
  config.twins.methods = ("magnitude",)
  summary = report.write_report(str(tmp_path), config, table, original, [(run, twin, None)])
  assert [entry["members"] for entry in summary["twins"]] == [0, 0]
  assert {claim["verdict"] for claim in summary["claims"]} == {"not tested"}
  # summary.json's members: one record per (run, member), levels and divergence included.
  with open(tmp_path / "summary.json") as file:
    records = json.load(file)["members"]
  assert [(record["run"], record["member"], record["level"]) for record in records] == (
      [("original", member, None) for member in range(4)]
      + [("magnitude_layerwise", member, 0.5 if member < 4 else 0.9) for member in range(8)])
  assert all(record["diverged"] for record in records)
  assert records[5]["original_member"] == 1 and records[5]["target_sparsity"] == 0.5
  assert "nan" not in (tmp_path / "report.md").read_text()
  assert not list((tmp_path / "figures").iterdir())


def test_a_level_whose_twins_all_have_one_accuracy_has_no_correlation(tmp_path):
  """Twins all at chance (one accuracy): the correlation is undefined, said so, not tested."""
  from jaxsparse.config import default_config
  table = population.member_table(dict(activation=("tanh",), optimizer=("adam",)), num_seeds=4)
  rng = np.random.default_rng(1)
  original = _record(rng.uniform(0.6, 0.9, 4), np.zeros(4), rng.integers(0, 10, (4, 40)))
  twin = _record(np.r_[rng.uniform(0.3, 0.6, 4), np.full(4, 0.1)], np.full(8, 0.9),
                 rng.integers(0, 10, (8, 40)))
  run = twins.TwinRun("variational_dropout", None, (10.0, 100.0), "/s/twins/vd")
  config = default_config()
  config.twins.methods = ("variational_dropout",)
  summary = report.write_report(str(tmp_path), config, table, original, [(run, twin, None)])
  spread, constant = (_claim(summary, f"KL weight {level} (") for level in (10, 100))
  assert spread["value"] is not None and "undefined" not in spread["statistic"]
  assert constant["value"] is None and constant["verdict"] == "not tested"
  assert "undefined: every twin has the same test accuracy" in constant["statistic"]
  text = (tmp_path / "report.md").read_text()
  assert "nan" not in text and "| n/a | n/a |" in text


def test_claims_state_unit_interval_family_and_holm(study):
  summary, truth = study
  for row in summary["claims"]:
    assert row["family"] in ("primary", "descriptive")
    assert row["interval_method"] in ("t", "fisher_z")
    assert (row["p_holm"] is not None) == (row["family"] == "primary" and
                                           row["verdict"] != "not tested")
  primary = [row for row in summary["claims"] if row["family"] == "primary"]
  assert len(primary) == 2 and all(row["unit"] == "grid cell" for row in primary)
  # The grid: 2 activations x 4 seeds; the interval is over the 2 cell means.
  above = _claim(summary, "variational_dropout beats magnitude (layerwise) at or above 80")
  differences = truth["vd_accuracy"][1] - truth["mp_at_vd"][1]
  cell_means = [differences[:4].mean(), differences[4:].mean()]
  from scipy import stats
  half = stats.t.ppf(0.975, 1) * np.std(cell_means, ddof=1) / np.sqrt(2)
  np.testing.assert_allclose([above["ci_low"], above["ci_high"]],
                             [np.mean(cell_means) - half, np.mean(cell_means) + half])
  assert above["units"] == 2 and above["members"] == P
  p_values = [row["p_value"] for row in primary]
  np.testing.assert_allclose(sorted(row["p_holm"] for row in primary),
                             [2 * min(p_values), max(2 * min(p_values), max(p_values))])
  low, high = above["corner_ci"]
  assert low < above["value"] < high


def test_robustness_is_judged_in_the_matched_band_with_a_sensitivity_line(study):
  summary, _ = study
  robust = _claim(summary, "magnitude (layerwise) is robust")
  assert "at 50% to 80% sparsity" in robust["claim"]
  assert set(robust["sensitivity"]) == {"drop 0.01", "drop 0.02", "drop 0.05",
                                        "relative drop 2%"}
  assert robust["sensitivity"]["drop 0.02"] == robust["verdict"]
  # VD's twins at 70 % are in the band; those at 87 % are not.
  vd = _claim(summary, "variational_dropout is robust")
  assert vd["members"] == P


def test_a_zoo_of_seeds_has_members_as_its_unit():
  rng = np.random.default_rng(3)
  table = population.member_table(dict(activation=("tanh",), optimizer=("adam",)), num_seeds=6)
  predictions = rng.integers(0, 10, (6, 40))
  original = _record(rng.uniform(0.7, 0.9, 6), np.zeros(6), predictions)
  twin = _record(np.r_[original["accuracy"] - 0.01, original["accuracy"] - 0.3],
                 np.r_[np.full(6, 0.6), np.full(6, 0.9)], np.concatenate([predictions] * 2))
  run = twins.TwinRun("magnitude", "layerwise", (0.6, 0.9), "/s/twins/magnitude_layerwise")
  summary = report.summarise(table, original, [(run, twin, None)])
  robust = _claim(summary, "is robust")
  assert (robust["unit"], robust["units"], robust["interval_method"]) == ("member", 6, "t")
  assert robust["corner_ci"] is None and robust["value"] == pytest.approx(0.01)


def test_verdicts_at_a_glance_place_every_claim_once(study):
  summary, _ = study
  table = report.verdicts_table(summary)
  lines = table.splitlines()
  assert lines[0] == "| claim | magnitude (layerwise) | variational_dropout |"
  robust = [line for line in lines if line.startswith("| robust")][0].split(" | ")[1:]
  assert robust[0] == _claim(summary, "magnitude (layerwise) is robust")["verdict"]
  correlated = [line for line in lines if line.startswith("| accuracies correlated")][0]
  magnitude_cell = correlated.split(" | ")[1]
  assert magnitude_cell == ", ".join(_claim(summary, f"magnitude (layerwise) at target {level:g}")
                                     ["verdict"] for level in LEVELS)
  paired = [row for row in summary["claims"] if row["kind"] == "paired"]
  assert len(paired) == 2 and all(f"| {row['verdict']} |" in table for row in paired)
  assert {row["kind"] for row in summary["claims"]} == {"robust", "paired", "agreement",
                                                        "correlation"}
  verdict_words = {"holds", "fails", "inconclusive", "not tested", ""}
  for line in lines[2:lines.index("")]:  # every cell of the first table is verdicts, no values
    for cell in line.strip("|").split(" | ")[1:]:
      assert set(cell.strip().split(", ")) <= verdict_words, line

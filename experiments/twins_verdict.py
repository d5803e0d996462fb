"""The verdict of the twins protocol study, by the decision rule of configs/twins_protocol.py.

:func:`write_verdict` reads the arms under a workdir of
``experiments/twins_protocol.py`` (whatever has finished) and writes
``verdict.md`` and ``verdict.json`` there: the zoo, VD's and magnitude
pruning's twins per level and epoch, the primary comparison per scope with
its t and BCa intervals and Holm-adjusted p, the secondary comparisons, the
fairness guard, the crossover sparsity per member, the bridge (the main
job's protocol on this zoo) and the trajectories.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pandas as pd

from jaxsparse import analysis, metrics, tables
from jaxsparse.errors import UserError
from experiments.common import markdown_table

SCOPES = ("layerwise", "global")
#: The VD arms, weakest first (``vd_stronger`` only runs when ``vd_strong`` stays below 90 %).
VD_ARMS = ("vd_public", "vd_strong", "vd_stronger")
#: VD arms that depart from the public protocol, each with the public-protocol arm of its KL
#: weight it is paired with: compared descriptively, never in the verdict.
DEPARTURE_ARMS = {"vd_straight_through": "vd_strong", "vd_per_batch": "vd_strong",
                  "vd_public_per_batch": "vd_public"}
#: The departures that sample VD's weight noise per batch (configs/twins_protocol.py).
PER_BATCH_ARMS = ("vd_per_batch", "vd_public_per_batch")
#: The departures whose paired comparison has an equivalence rule written before their run
#: (configs/twins_protocol.py), and its margins for the paired difference's 95 % t interval.
EQUIVALENCE_ARMS = PER_BATCH_ARMS
EQUIVALENCE_MARGINS = {"test_accuracy": 0.01, "achieved_sparsity": 0.02}
#: What the figure adds to the label of a departure arm whose method is a public arm's.
SERIES_NOTES = dict.fromkeys(PER_BATCH_ARMS, "per-batch noise")
#: Magnitude pruning's fine-tuning epochs the secondary comparisons are read at; the
#: primary reads ``magnitude_5``'s last epoch (5), the guard ``magnitude_25``'s (25).
EPOCHS = (0, 1)
CROSSOVER = analysis.CROSSOVER_SPARSITY
#: Below this mean test accuracy the public-protocol VD twins are at chance (10 classes).
CHANCE = 0.15
ALPHA = 0.05


def _finished(workdir: str, arm: str) -> bool:
  return os.path.exists(os.path.join(workdir, arm, "summary.json"))


def _magnitude_curve(trajectories: dict[str, pd.DataFrame], scope: str,
                     epochs: dict[str, int]) -> pd.DataFrame:
  """The magnitude twins of ``scope``: of each arm (``magnitude_5``, ``magnitude_25``) the
  rows of the epoch ``epochs`` names for it."""
  frames = []
  for arm, epoch in epochs.items():
    rows = trajectories[arm]
    frames.append(rows[(rows.run == f"magnitude_{scope}") & (rows.epoch == epoch)])
  return pd.concat(frames, ignore_index=True)


def _with_originals(rows: pd.DataFrame, originals: pd.DataFrame) -> pd.DataFrame:
  accuracy = originals.set_index("member")
  return rows.assign(
      original_test_accuracy=accuracy.loc[rows.original_member, "test_accuracy"].to_numpy(),
      original_diverged=accuracy.loc[rows.original_member, "diverged"].to_numpy(bool),
      diverged=rows["diverged"].fillna(0).astype(bool))


def verdict_of(estimate: analysis.Estimate, p_holm: float, bca: analysis.Estimate) -> str:
  """The decision rule: reproduced / contradicted / unresolved (with 'fragile' when the BCa
  interval disagrees), or not testable with fewer than 3 members."""
  if estimate.n < 3 or not np.isfinite(p_holm):
    return "not testable"
  if p_holm >= ALPHA:
    return "unresolved"
  verdict = "reproduced" if estimate.value > 0 else "contradicted"
  agrees = bca.low > 0 if estimate.value > 0 else bca.high < 0
  return verdict if agrees else verdict + " (fragile: the BCa interval includes 0)"


def _comparison(curve: pd.DataFrame, vd: pd.DataFrame, low: float, high: float) -> dict:
  """Per member, VD minus its magnitude curve over its VD twins in [low, high); over
  members, the t and BCa estimates."""
  pairs = analysis.paired_twins(curve, vd)
  means = analysis.member_means(pairs, low, high)
  in_band = pairs[(pairs.achieved_sparsity >= low) & (pairs.achieved_sparsity < high)]
  return {"t": analysis.t_estimate(means.to_numpy()),
          "bca": analysis.bca_estimate(means.to_numpy()),
          "twins": int(np.isfinite(in_band.difference).sum()),
          "unpaired": int((~np.isfinite(in_band.difference)).sum()),
          "members": means.to_dict(), "pairs": pairs}


def _crossover_sparsity(pairs: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
  """Per member, the sparsity where VD minus magnitude changes sign, interpolated between
  its VD twins in order of sparsity; below the sparsest VD win or beyond the last twin it
  is censored at that twin's sparsity (members without a paired VD twin are left out).
  Returns the sparsities and, per member, whether it was censored."""
  values, censored = {}, {}
  for member, rows in pairs[np.isfinite(pairs.difference)].groupby("original_member"):
    rows = rows.sort_values("achieved_sparsity")
    xs, ds = rows.achieved_sparsity.to_numpy(), rows.difference.to_numpy()
    values[member], censored[member] = (xs[-1] if ds[-1] <= 0 else xs[0]), True
    for (x0, d0), (x1, d1) in zip(zip(xs, ds), zip(xs[1:], ds[1:])):
      if d0 <= 0 < d1:
        values[member], censored[member] = x0 + (x1 - x0) * (-d0) / (d1 - d0), False
  return pd.Series(values, dtype=float), pd.Series(censored, dtype=bool)


def equivalence_of(estimate: analysis.Estimate, margin: float) -> str:
  """The equivalence rule's outcome for a paired difference's interval: 'equivalent' if it
  lies within +-``margin``, 'differs' if it excludes 0 and leaves the margin, otherwise
  'inconclusive'."""
  if -margin <= estimate.low and estimate.high <= margin:
    return "equivalent"
  if estimate.low > 0 or estimate.high < 0:
    return "differs"
  return "inconclusive"


def paired_departures(trajectories: dict) -> pd.DataFrame:
  """Per departure arm that has finished with its public-protocol arm: per member, the
  departure's twin minus the public twin after their last epoch (test accuracy, sparsity);
  over members, the mean with a 95 % t interval, and the equivalence rule's outcome where
  one was written before the run (:data:`EQUIVALENCE_ARMS`)."""
  rows = []
  for arm, reference in DEPARTURE_ARMS.items():
    if arm not in trajectories or reference not in trajectories:
      continue
    final = [frame[frame.epoch == frame.epoch.max()].set_index("original_member")
             for frame in (trajectories[arm], trajectories[reference])]
    for quantity, margin in EQUIVALENCE_MARGINS.items():
      differences = (final[0][quantity] - final[1][quantity]).dropna()
      estimate = analysis.t_estimate(differences.to_numpy())
      rows.append({"departure": arm, "paired with": reference, "quantity": quantity,
                   "members": estimate.n, "mean difference": estimate.value,
                   "t 95 % interval": f"[{estimate.low:.4f}, {estimate.high:.4f}]",
                   "outcome": (f"{equivalence_of(estimate, margin)} (margin +-{margin:g})"
                               if arm in EQUIVALENCE_ARMS else "descriptive")})
  return pd.DataFrame(rows)


def _estimate_record(estimate: analysis.Estimate) -> dict:
  return {key: (None if isinstance(value, float) and not np.isfinite(value) else value)
          for key, value in estimate._asdict().items()}


def _primary(vd: pd.DataFrame, trajectories: dict, epochs_by_arm: dict, label: str) -> list:
  rows = []
  for scope in SCOPES:
    curve = _magnitude_curve(trajectories, scope, epochs_by_arm)
    comparison = _comparison(curve, vd, CROSSOVER, 1.01)
    rows.append({"comparison": label, "scope": scope, **comparison})
  holm = analysis.holm([row["t"].p_value for row in rows])
  for row, p in zip(rows, holm):
    row["p_holm"] = p
    row["verdict"] = verdict_of(row["t"], p, row["bca"])
  return rows


def _estimates_table(rows: list[dict]) -> pd.DataFrame:
  return pd.DataFrame([{
      "comparison": row["comparison"], "scope": row["scope"], "members": row["t"].n,
      "VD twins paired": row["twins"], "unpaired": row["unpaired"],
      "mean (VD - magnitude)": row["t"].value, "t 95 % interval":
      f"[{row['t'].low:.3f}, {row['t'].high:.3f}]", "BCa 95 % interval":
      f"[{row['bca'].low:.3f}, {row['bca'].high:.3f}]", "p": row["t"].p_value,
      "p (Holm)": row.get("p_holm", np.nan), "verdict": row.get("verdict", "descriptive")}
      for row in rows])


def _level_tables(trajectories: dict, originals: pd.DataFrame) -> tuple[pd.DataFrame, ...]:
  """VD per level (final), magnitude per scope, target and epoch."""
  vd_rows = []
  for arm in (*VD_ARMS, *DEPARTURE_ARMS):
    if arm not in trajectories:
      continue
    rows = trajectories[arm]
    final = _with_originals(rows[rows.epoch == rows.epoch.max()], originals)
    vd_rows.append({"arm": arm, "KL weight": final.level.iloc[0],
                    "sparsity": final.achieved_sparsity.mean(),
                    "accuracy": final.test_accuracy.mean(),
                    "drop": (final.original_test_accuracy - final.test_accuracy).mean(),
                    "agreement": final.agreement.mean(),
                    "at chance": int((final.test_accuracy < CHANCE).sum()),
                    "twins": len(final)})
  magnitude_rows = []
  for arm in ("magnitude_5", "magnitude_25"):
    if arm not in trajectories:
      continue
    rows = trajectories[arm]
    wanted = EPOCHS + (trajectories["magnitude_5"].epoch.max(), rows.epoch.max())
    for (run, level, epoch), group in rows[rows.epoch.isin(wanted)].groupby(
        ["run", "level", "epoch"]):
      magnitude_rows.append({"scope": run.removeprefix("magnitude_"), "target": level,
                             "epoch": epoch, "sparsity": group.achieved_sparsity.mean(),
                             "accuracy": group.test_accuracy.mean(),
                             "agreement": group.agreement.mean()})
  return pd.DataFrame(vd_rows), pd.DataFrame(magnitude_rows)


def _trajectory_table(trajectories: dict) -> pd.DataFrame:
  rows = []
  for arm, frame in trajectories.items():
    for (run, level, epoch), group in frame.groupby(["run", "level", "epoch"]):
      rows.append({"arm": arm, "run": run, "level": level, "epoch": epoch,
                   "sparsity": group.achieved_sparsity.mean(),
                   "accuracy": group.test_accuracy.mean(),
                   "agreement": group.agreement.mean()})
  return pd.DataFrame(rows)


def _zoo_table(workdir: str) -> tuple[pd.DataFrame, pd.DataFrame]:
  zoo = os.path.join(workdir, "zoo")
  originals = tables.load_run(zoo, "original")
  rows = pd.DataFrame(metrics.read_metrics(os.path.join(zoo, "metrics.jsonl")))
  curve = rows.dropna(subset=["validation_accuracy"]).groupby("epoch")[
      ["validation_accuracy", "test_accuracy", "train_loss"]].mean().reset_index()
  return originals, curve


def write_verdict(workdir: str) -> dict:
  """Writes ``verdict.md`` and ``verdict.json`` under ``workdir`` from its finished arms;
  returns the JSON record."""
  if not os.path.exists(os.path.join(workdir, "zoo", "members.csv")):
    raise UserError(f"{workdir}/zoo is not trained yet; run experiments/twins_protocol.py")
  originals, zoo_curve = _zoo_table(workdir)
  trajectories = {arm: tables.load_trajectories(os.path.join(workdir, arm))
                  for arm in (*VD_ARMS, *DEPARTURE_ARMS, "magnitude_5", "magnitude_25")
                  if _finished(workdir, arm)}
  lines = [f"# Twins protocol study: the verdict ({time.strftime('%Y-%m-%d')})", "",
           "Decision rule: configs/twins_protocol.py (written before the run).", "",
           f"## Zoo: {len(originals)} members of the uniform recipe", "",
           f"Final test accuracy {originals.test_accuracy.mean():.4f} "
           f"(min {originals.test_accuracy.min():.4f}, max {originals.test_accuracy.max():.4f}); "
           "validation and test accuracy every 5 epochs (population mean):", "",
           markdown_table(zoo_curve, digits=4), ""]
  record = {"zoo": {"test_accuracy": originals.test_accuracy.tolist(),
                    "curve": zoo_curve.to_dict("records")}}
  lines, record = _levels_section(lines, record, trajectories, originals)
  vd_arms = [arm for arm in VD_ARMS if arm in trajectories]
  with_magnitude = {"magnitude_5", "magnitude_25"} <= set(trajectories)
  if vd_arms and with_magnitude and record.get("sanity") != "failed":
    lines, record = _comparisons(lines, record, trajectories, vd_arms, originals)
  departures = paired_departures(trajectories)
  if len(departures):
    lines += ["## Departures against the public protocol at the same KL weight", "",
              "Per member: the departure's twin minus the public-protocol twin after the last "
              "epoch; over members (unit: member = seed; estimand: the mean paired difference "
              "over the uniform zoo).", "", markdown_table(departures), ""]
    record["departures"] = departures.to_dict("records")
  if _finished(workdir, "bridge"):
    bridge = _bridge_claims(workdir)
    lines += ["## Bridge: the main job's twin protocol on this zoo", "",
              markdown_table(bridge), ""]
    record["bridge"] = bridge.to_dict("records")
  if with_magnitude:
    from jaxsparse import figures  # (matplotlib, only here)
    figures.save(_figure(trajectories, originals), workdir, "accuracy_vs_sparsity")
    lines += ["Figure: `accuracy_vs_sparsity.png` (the twins after their last epoch, magnitude "
              "pruning's after 5 and 25 fine-tuning epochs).", ""]
  if trajectories:
    trajectory = _trajectory_table(trajectories)
    lines += ["## Trajectories (population means per evaluated epoch)", "",
              markdown_table(trajectory), ""]
    record["trajectories"] = trajectory.to_dict("records")
  with open(os.path.join(workdir, "verdict.md"), "w") as file:
    file.write("\n".join(lines))
  with open(os.path.join(workdir, "verdict.json"), "w") as file:
    json.dump(record, file, indent=1, default=float)
  print("\n".join(lines), flush=True)
  return record


def _levels_section(lines: list[str], record: dict, trajectories: dict,
                    originals: pd.DataFrame) -> tuple[list[str], dict]:
  """``lines`` and ``record`` with VD's twins per level and magnitude's per fine-tuning epoch
  (:func:`_level_tables`), and the sanity check: public-protocol VD twins at chance withhold
  the verdict (``record['sanity'] = 'failed'``)."""
  vd_levels, magnitude_levels = _level_tables(trajectories, originals)
  if len(vd_levels):
    lines += ["## Variational dropout twins (after their last epoch)", "",
              markdown_table(vd_levels), ""]
    public = vd_levels[vd_levels.arm == "vd_public"]
    if len(public) and public.accuracy.iloc[0] < CHANCE:
      lines += ["**Sanity check failed: public-protocol VD twins end at chance. The "
                "implementation is suspected; no verdict is drawn.**", ""]
      record["sanity"] = "failed"
  if len(magnitude_levels):
    lines += ["## Magnitude twins per fine-tuning epoch", "",
              markdown_table(magnitude_levels), ""]
  record["vd_levels"] = vd_levels.to_dict("records")
  record["magnitude_levels"] = magnitude_levels.to_dict("records")
  return lines, record


def _bridge_claims(workdir: str) -> pd.DataFrame:
  """The claims of the bridge arm's report (the main job's protocol on this zoo)."""
  with open(os.path.join(workdir, "bridge", "summary.json")) as file:
    claims = json.load(file)["claims"]
  return pd.DataFrame([{"claim": c["claim"], "value": c["value"], "low": c["ci_low"],
                        "high": c["ci_high"], "verdict": c["verdict"]} for c in claims])


def _comparisons(lines: list[str], record: dict, trajectories: dict, vd_arms: list[str],
                 originals: pd.DataFrame):
  vd = pd.concat([trajectories[arm][trajectories[arm].epoch == trajectories[arm].epoch.max()]
                  for arm in vd_arms], ignore_index=True)
  vd = _with_originals(vd, originals)
  primary_epoch = int(trajectories["magnitude_5"].epoch.max())
  guard_epoch = int(trajectories["magnitude_25"].epoch.max())
  primary = _primary(vd, trajectories, {"magnitude_5": primary_epoch,
                                        "magnitude_25": primary_epoch},
                     f"primary: magnitude after {primary_epoch} epochs, >= 80 %")
  secondary = []
  for epoch in EPOCHS:
    secondary += _primary(vd, trajectories, {"magnitude_5": epoch, "magnitude_25": epoch},
                          f"secondary: magnitude after {epoch} epochs, >= 80 %")
  for scope in SCOPES:
    curve = _magnitude_curve(trajectories, scope, {"magnitude_5": primary_epoch,
                                                   "magnitude_25": primary_epoch})
    secondary.append({"comparison": f"secondary: below 80 % (magnitude after {primary_epoch} "
                                    "epochs)", "scope": scope,
                      **_comparison(curve, vd, 0.0, CROSSOVER)})
  guard = _primary(vd, trajectories, {"magnitude_5": primary_epoch,
                                      "magnitude_25": guard_epoch},
                   f"fairness guard: magnitude 85-95 % after {guard_epoch} epochs")
  departures = _departures(trajectories, originals, primary_epoch, guard_epoch)
  final = {}
  for row, guarded in zip(primary, guard):
    verdict = row["verdict"]
    if verdict.startswith("reproduced") and not guarded["verdict"].startswith("reproduced"):
      verdict = (f"reproduced at {primary_epoch} fine-tuning epochs only (not with "
                 f"{guard_epoch})")
    final[row["scope"]] = verdict
  crossings = []
  for row in primary:
    crossing, censored = _crossover_sparsity(row["pairs"])
    median = analysis.bca_estimate(crossing.to_numpy(), statistic="median")
    crossings.append({"scope": row["scope"], "members": len(crossing),
                      "censored (no sign change)": int(censored.sum()),
                      "median": median.value, "BCa 95 % interval of the median":
                      f"[{median.low:.3f}, {median.high:.3f}]",
                      "mean": float(crossing.mean()) if len(crossing) else np.nan})
  lines += ["## Verdict", "",
            *[f"- **{scope}**: {verdict}" for scope, verdict in final.items()], "",
            "## Primary, secondary and guard comparisons", "",
            "Per member: mean over its VD twins in the band of VD accuracy minus its own "
            "magnitude curve (anchored at its dense accuracy at 0 %) at the VD twin's "
            "sparsity; then over members (unit: member = seed; estimand: the mean over "
            "members of the uniform zoo).", "",
            markdown_table(_estimates_table(primary + secondary + guard + departures)), "",
            "## Crossover sparsity per member (where VD minus magnitude turns positive)", "",
            "A member whose VD twins are all ahead (or all behind) has no crossing within "
            "them: it is censored at its least sparse twin (all ahead) or its sparsest (all "
            "behind).", "",
            markdown_table(pd.DataFrame(crossings)), ""]
  record.update(verdict=final, comparisons=[
      {"comparison": row["comparison"], "scope": row["scope"],
       "t": _estimate_record(row["t"]), "bca": _estimate_record(row["bca"]),
       "twins": row["twins"], "unpaired": row["unpaired"],
       "p_holm": row.get("p_holm"), "verdict": row.get("verdict", "descriptive"),
       "members": {str(k): v for k, v in row["members"].items()}}
      for row in primary + secondary + guard + departures], crossover=crossings)
  return lines, record


def _departures(trajectories: dict, originals: pd.DataFrame, primary_epoch: int,
                guard_epoch: int) -> list[dict]:
  """The primary's and the guard's comparisons, and the one below 80 %, for each departure
  arm that has finished: descriptive (no Holm, no verdict)."""
  rows = []
  for arm in [arm for arm in DEPARTURE_ARMS if arm in trajectories]:
    frame = trajectories[arm]
    vd = _with_originals(frame[frame.epoch == frame.epoch.max()], originals)
    for label, epochs, low, high in (
        (f">= 80 %, magnitude after {primary_epoch} epochs", primary_epoch, CROSSOVER, 1.01),
        (f">= 80 %, magnitude 85-95 % after {guard_epoch} epochs", guard_epoch, CROSSOVER,
         1.01),
        (f"below 80 %, magnitude after {primary_epoch} epochs", primary_epoch, 0.0,
         CROSSOVER)):
      for scope in SCOPES:
        curve = _magnitude_curve(trajectories, scope, {"magnitude_5": primary_epoch,
                                                       "magnitude_25": epochs})
        rows.append({"comparison": f"departure {arm}: {label}", "scope": scope,
                     **_comparison(curve, vd, low, high)})
  return rows


def _figure(trajectories: dict, originals: pd.DataFrame):
  """Twin accuracy against sparsity: every VD arm after its last epoch (the per-batch arms a
  series of their own), magnitude pruning after 5 (every target) and 25 fine-tuning epochs
  (85 to 95 %), the dense originals."""
  from jaxsparse import figures
  parts = [originals]
  for arm, frame in trajectories.items():
    if not arm.startswith("magnitude_"):
      final = frame[frame.epoch == frame.epoch.max()]
      parts.append(final.assign(scope=SERIES_NOTES[arm]) if arm in SERIES_NOTES else final)
      continue
    epochs = (5, 25) if arm == "magnitude_25" else (5,)
    parts += [frame[frame.epoch == epoch].assign(
        scope=lambda rows, epoch=epoch: rows.scope + f", {epoch} epochs") for epoch in epochs]
  return figures.accuracy_vs_sparsity(pd.concat(parts, ignore_index=True))

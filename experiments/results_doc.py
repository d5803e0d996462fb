"""docs/results.md's and docs/benchmarks.md's tables, generated from the studies' own results.

Each study of record keeps its results and their provenance (commit, dates,
machine, command: jaxsparse/provenance.py) in ``docs/results/<study>.json``; this
command renders every study's tables between the markers ``<!-- generated:
<study> -->`` and ``<!-- end generated: <study> -->`` of docs/results.md, with one
provenance line (and of docs/benchmarks.md for the speed studies, and the README's
headline table). ``tests/test_results_doc.py`` fails when a page differs from what the
recorded results give.

  python experiments/results_doc.py                                # re-render the page
  python experiments/results_doc.py --record=main_job=runs/default  # record a finished run, then render

Recording copies the study's results file (``summary.json`` of a twins study,
``results.json`` of an experiment script, ``verdict.json`` of the protocol
study) and its ``provenance.json``. A run that finished before commands wrote
provenance is recorded with ``--provenance=commit=HASH --provenance=command=COMMAND`` (its dates
then come from the results file's modification time, and its machine from this one).
"""

from __future__ import annotations

import datetime
import json
import os
import sys
from typing import Callable, NamedTuple

import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.common import markdown_table  # noqa: E402
from jaxsparse import provenance, reference, report  # noqa: E402
from jaxsparse.errors import UserError  # noqa: E402

PAGE = os.path.join("docs", "results.md")
BENCHMARKS = os.path.join("docs", "benchmarks.md")
RECORDS = os.path.join("docs", "results")


def _twins_tables(summary: dict) -> str:
  # Robustness and the paired crossover here; agreement and correlation per band and level
  # (most of the rows) are in the run's report.md, and their verdicts in the README's table.
  shown = {**summary, "claims": [row for row in summary["claims"]
                                 if row.get("kind") in ("robust", "paired")]}
  return "\n\n".join(["Per method and level (population means; accuracy mean ± std over "
                      "members):", report.headline_table(summary),
                      "The robustness and crossover claims (each with its unit, interval "
                      "method and family; the agreement and correlation claims are in the "
                      "run's report.md):", report.claims_table(shown)])


def _levels_table(summary: dict) -> str:
  return "Per method and level (population means):\n\n" + report.headline_table(summary)


def _tables(captions: dict[str, str]) -> Callable[[dict], str]:
  """A renderer of an experiment's ``results.json``: each named table under its caption."""
  def render(results: dict) -> str:
    return "\n\n".join(f"{caption}\n\n{markdown_table(pd.DataFrame(results[name]))}"
                       for name, caption in captions.items() if results.get(name))
  return render


def _interval(estimate: dict) -> str:
  """``[low, high]`` of a recorded estimate (n/a where it is undefined: recorded as None)."""
  if estimate["low"] is None or estimate["high"] is None:
    return "n/a"
  return f"[{estimate['low']:.3f}, {estimate['high']:.3f}]"


def _verdict(record: dict) -> str:
  lines = [f"- **{scope}**: {verdict}" for scope, verdict in record.get("verdict", {}).items()]
  parts = ["Verdict per scope (decision rule: configs/twins_protocol.py):\n\n" + "\n".join(
      lines or ["- not drawn yet (arms missing)"])]
  comparisons = [{"comparison": row["comparison"], "scope": row["scope"],
                  "members": row["t"]["n"], "VD twins": row["twins"],
                  "VD minus magnitude": row["t"]["value"],
                  "95 % t interval": _interval(row["t"]), "BCa interval": _interval(row["bca"]),
                  "p (Holm)": row.get("p_holm"), "verdict": row["verdict"]}
                 for row in record.get("comparisons", [])]
  if comparisons:
    parts.append("Comparisons (unit: member = seed; estimand: the mean over members of the "
                 "uniform zoo):\n\n" + markdown_table(pd.DataFrame(comparisons)))
  return "\n\n".join(parts + [_tables({
      "vd_levels": "VD twins after their last epoch:",
      "magnitude_levels": "Magnitude twins per fine-tuning epoch:",
      "crossover": "Crossover sparsity per member:",
      "bridge": "Bridge: the main job's twin protocol on this zoo:",
      "departures": "Departures against the public protocol at the same KL weight (per "
                    "member, the departure's twin minus the public-protocol twin after the "
                    "last epoch; unit: member = seed):"})(record)])


def _vd_floor(results: dict) -> str:
  settings = results["settings"]
  table = pd.DataFrame(results["floor"]).rename(
      columns={"value": "median", "low": "least", "high": "greatest"})
  return (f"CNN-s, P = 64, batch {settings['batch']}, {settings['rounds']} alternating rounds "
          f"of {settings['steps']} steps (the matrix products' share from one profile of the "
          "dense step):\n\n" + markdown_table(table))


class Study(NamedTuple):
  """A study of record: its results file, how its tables read and the page they go on."""
  source: str
  render: Callable[[dict], str]
  keep: tuple[str, ...] | None = None  # the results' keys worth recording (None: all)
  page: str = PAGE


STUDIES = {
    "main_job": Study("summary.json", _twins_tables, ("original", "twins", "claims")),
    "vd_levels": Study("summary.json", _levels_table, ("original", "twins")),
    "vd_protocol_ablation": Study("results.json", _tables({
        "levels": "VD twins per arm and KL weight (mean sparsity, mean accuracy drop, twins "
                  "at chance of 16):",
        "crossover": "Paired crossover at or above 80 % (VD minus the member's magnitude "
                     "curve at the VD twin's sparsity; mean over members and its standard "
                     "error; unit: member):",
        "prune_only": "Magnitude twins before and after fine-tuning (population means):"})),
    "twins_protocol": Study("verdict.json", _verdict, ("verdict", "comparisons", "vd_levels",
                                                       "magnitude_levels", "crossover",
                                                       "bridge", "departures"),
                            os.path.join("docs", "twins_protocol.md")),
    # population_speed with PyTorch 2.13.0 (CPU build), _torch214 with 2.14.1 (the pin since
    # the ResNet-18 zoos): the ratio depends on the PyTorch release, so both stay recorded.
    **{name: Study("results.json", _tables({
        "ratios": "CNN-s, P = 64, each member on its own batches; medians of the alternating "
                  "rounds in member-steps/s, jaxsparse over the fastest PyTorch ensemble, and "
                  "variational dropout's step over the dense one:",
        "measurements": "Every measurement (one process each; the fastest of 3 timed calls of "
                        "10 steps after a compiling call):"}), page=BENCHMARKS)
       for name in ("population_speed", "population_speed_torch214")},
    **{name: Study("results.json", _tables({
        "roofline": f"One training step of CNN-s ({method}; P = 64, batch 32, one device per "
                    "core) against the machine's float32 matmul rate:",
        "parts": "Where the step's time goes (XLA:CPU operations of the profile, by kind):",
        "top": "The operations that take the most time (share of all operations' time; "
               "`from`: the JAX operation, the end of its op_name):"}),
        page=BENCHMARKS) for name, method in (("roofline", "dense"),
                                               ("roofline_vd", "variational dropout"))},
    **{name: Study("results.json", _vd_floor, ("floor", "settings"), BENCHMARKS)
       for name in ("vd_floor", "vd_floor_32")},
}


def _load(path: str) -> dict:
  try:
    with open(path) as file:
      return json.load(file)
  except (OSError, ValueError) as error:
    raise UserError(f"cannot read {path} ({error})") from error


def record(name: str, workdir: str, given: dict[str, str] | None = None) -> str:
  """Copies study ``name``'s results and provenance from ``workdir`` to docs/results/;
  returns the written path."""
  if name not in STUDIES:
    raise UserError(f"--record={name}=...: unknown study; use one of {', '.join(STUDIES)}")
  study = STUDIES[name]
  source = os.path.join(workdir, study.source)
  results = _load(source)
  if study.keep is not None:
    results = {key: results[key] for key in study.keep if key in results}
  origin = os.path.join(workdir, provenance.PROVENANCE_FILE)
  if os.path.exists(origin):
    stamp = _load(origin)
  elif given and {"commit", "command"} <= set(given):
    finished = datetime.datetime.fromtimestamp(os.path.getmtime(source), datetime.timezone.utc)
    seconds = results.get("seconds") if isinstance(results, dict) else None
    stamp = {"started": "unrecorded", "finished": finished.strftime("%Y-%m-%d %H:%M UTC"),
             "minutes": "unrecorded" if seconds is None else round(seconds / 60, 1),
             "machine": provenance.machine(), **given}
  else:
    raise UserError(f"{origin} is missing (the run predates provenance records); give "
                    "--provenance=commit=HASH --provenance=command=COMMAND")
  path = os.path.join(reference.REPOSITORY, RECORDS, f"{name}.json")
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as file:
    json.dump({"provenance": stamp, "results": results}, file, indent=1, default=str)
  return path


def rendered(name: str) -> str | None:
  """Study ``name``'s part of docs/results.md (provenance line and tables), or None if it is
  not recorded."""
  return _part(name)


def _verdict_of_record(results: dict, stamp: dict) -> str:
  """The README's line of the protocol study: its primary comparison per scope, verdict,
  command and date."""
  primary = {row["scope"]: row for row in results.get("comparisons", [])
             if row["comparison"].startswith("primary")}
  cells = []
  for scope, verdict in results.get("verdict", {}).items():
    t = primary[scope]["t"]
    cells.append(f"**{verdict}**: {t['value']:+.3f}, t 95 % {_interval(t)}, {t['n']} members, "
                 f"Holm p {primary[scope]['p_holm']:.2g}")
  return (f"| the paper's claim, tested by the protocol study (`{stamp['command']}`, "
          f"{stamp['finished'].split()[0]}) | layer-wise | global |\n| --- | --- | --- |\n"
          "| VD, trained as the public code trains it, beats magnitude pruning at or above 80 % "
          "sparsity (VD minus magnitude, per member) | " + " | ".join(cells) + " |")


#: Generated parts outside the studies' pages: file -> {part: (study, render(results,
#: provenance))}.
OTHER_PARTS = {"README.md": {
    "main job verdicts": ("main_job", lambda results, _: report.verdicts_table(results)),
    "verdict of record": ("twins_protocol", _verdict_of_record)}}


def _part(study: str, render: Callable[[dict], str] | None = None) -> str | None:
  path = os.path.join(reference.REPOSITORY, RECORDS, f"{study}.json")
  if not os.path.exists(path):
    return None
  stored = _load(path)
  if render is not None:
    return render(stored["results"], stored["provenance"])
  return provenance.line(stored["provenance"]) + "\n\n" + STUDIES[study].render(
      stored["results"])


def page(text: str, path: str = PAGE) -> str:
  """``text`` (the file at ``path``, one of :func:`pages`) with every recorded study's part
  regenerated."""
  parts = {name: (name, None) for name, study in STUDIES.items() if study.page == path}
  parts.update(OTHER_PARTS.get(path, {}))
  for name, (study, render) in parts.items():
    content = _part(study, render)
    if content is not None and f"<!-- generated: {name} -->" in text:
      text = reference.generated_text(text, name, content)
  return text


def pages() -> list[str]:
  """Every file with generated parts."""
  return list(dict.fromkeys([*(study.page for study in STUDIES.values()), *OTHER_PARTS]))


def main(records: list[str], given: list[str]) -> None:
  stamp = dict(item.split("=", 1) for item in given) if given else None
  for item in records:
    name, _, workdir = item.partition("=")
    print(f"recorded {record(name, workdir, stamp)}")
  for relative in pages():
    path = os.path.join(reference.REPOSITORY, relative)
    with open(path) as file:
      text = file.read()
    updated = page(text, relative)
    if updated != text:
      with open(path, "w") as file:
        file.write(updated)
      print(f"rewrote {relative}")


if __name__ == "__main__":
  from absl import flags
  from experiments import common
  records = flags.DEFINE_multi_string("record", [], "STUDY=WORKDIR: record a finished study's "
                                      f"results (studies: {', '.join(STUDIES)}).")
  given = flags.DEFINE_multi_string("provenance", [], "KEY=VALUE (commit, command, started) "
                                    "for a run without provenance.json.")
  common.run(lambda: main(records.value, given.value))

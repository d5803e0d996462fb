"""docs/results.md's tables come from the recorded results (docs/results/), each with its
provenance line; recording a finished run copies its results and provenance."""

import json
import os
import time

import pytest

from experiments import results_doc
from jaxsparse import provenance
from jaxsparse.errors import UserError


@pytest.mark.parametrize("path", results_doc.pages())
def test_results_page_is_current(path):
  with open(os.path.join(results_doc.reference.REPOSITORY, path)) as file:
    text = file.read()
  assert results_doc.page(text, path) == text, "run: python experiments/results_doc.py"
  for name, study in results_doc.STUDIES.items():  # a recorded study has its part on its page
    if study.page == path and results_doc.rendered(name) is not None:
      assert f"<!-- generated: {name} -->" in text, name


@pytest.mark.parametrize("path, limit", [("README.md", 12_500), ("docs/results.md", 25_000)])
def test_front_pages_stay_short(path, limit):
  """The README stays a front door and results.md a page of current findings (the dated
  runs live in docs/history/): sizes in bytes."""
  assert os.path.getsize(os.path.join(results_doc.reference.REPOSITORY, path)) <= limit


def test_provenance_names_the_command_as_typed():
  assert provenance.command(["/x/jaxsparse/main.py", "--config=c.py", "--workdir=a b"]) == \
      "python -m jaxsparse.main --config=c.py '--workdir=a b'"
  stamp = provenance.record(time.time() - 120)
  assert stamp["minutes"] == pytest.approx(2.0, abs=0.1)
  assert stamp["commit"] == "unknown" or len(stamp["commit"].split("+")[0]) == 7
  assert stamp["commit"] in provenance.line(stamp)


def _finished_experiment(workdir, with_provenance: bool):
  os.makedirs(workdir)
  results = {"levels": [{"arm": "a", "KL weight": 5.0, "sparsity": 0.5}], "seconds": 3.0}
  with open(os.path.join(workdir, "results.json"), "w") as file:
    json.dump(results, file)
  if with_provenance:
    provenance.write(str(workdir), time.time() - 60)


def test_recording_copies_results_and_provenance(tmp_path, monkeypatch):
  monkeypatch.setattr(results_doc.reference, "REPOSITORY", str(tmp_path))
  _finished_experiment(tmp_path / "run", with_provenance=True)
  path = results_doc.record("vd_protocol_ablation", str(tmp_path / "run"))
  assert path == str(tmp_path / "docs" / "results" / "vd_protocol_ablation.json")
  part = results_doc.rendered("vd_protocol_ablation")
  assert part.startswith("*Provenance: commit `")
  assert "| a | 5 | 0.500 |" in part  # a whole-number column prints whole
  page = "intro\n<!-- generated: vd_protocol_ablation -->\nold\n" \
         "<!-- end generated: vd_protocol_ablation -->\nafter\n"
  assert results_doc.page(page) == \
      f"intro\n<!-- generated: vd_protocol_ablation -->\n{part}\n" \
      "<!-- end generated: vd_protocol_ablation -->\nafter\n"


def test_a_run_without_provenance_needs_it_given(tmp_path, monkeypatch):
  monkeypatch.setattr(results_doc.reference, "REPOSITORY", str(tmp_path))
  _finished_experiment(tmp_path / "run", with_provenance=False)
  with pytest.raises(UserError, match="provenance.json is missing"):
    results_doc.record("vd_protocol_ablation", str(tmp_path / "run"))
  results_doc.record("vd_protocol_ablation", str(tmp_path / "run"),
                     {"commit": "abc1234", "command": "python x.py"})
  assert "`abc1234`" in results_doc.rendered("vd_protocol_ablation")
  with pytest.raises(UserError, match="unknown study"):
    results_doc.record("nope", str(tmp_path / "run"))

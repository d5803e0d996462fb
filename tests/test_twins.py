"""The sparsified-twins study end to end on a tiny zoo: outputs, links, resume."""

import json
import os
import shutil

import jax.numpy as jnp
import numpy as np
import pytest

from jaxsparse import build, checkpoints, engine, population, sparsify, twins
from jaxsparse import workdir as workdir_lib

from conftest import make_tiny_study_config, random_dataset

pytestmark = pytest.mark.slow  # end-to-end: make test-all runs it


@pytest.fixture(scope="module")
def study(tmp_path_factory):
  config = make_tiny_study_config()
  data = random_dataset(num_train=64)
  workdir = str(tmp_path_factory.mktemp("study"))
  summary = twins.run_study(config, workdir, data)
  return config, data, workdir, summary


def test_study_writes_report_summary_and_figures(study):
  _, _, workdir, summary = study
  for name in ("report.md", "summary.json", "figures/accuracy_vs_sparsity.png",
               "figures/layer_sparsity.png", "figures/agreement_vs_sparsity.png",
               "figures/original_vs_twin.png", "figures/convergence.png"):
    assert os.path.getsize(os.path.join(workdir, name)) > 0, name
  with open(os.path.join(workdir, "summary.json")) as file:
    assert json.load(file) == json.loads(json.dumps(summary))
  assert [(e["series"], e["level"]) for e in summary["twins"]] == [
      ("magnitude (layerwise)", 0.5), ("magnitude (layerwise)", 0.9),
      ("magnitude (global)", 0.5), ("magnitude (global)", 0.9),
      ("variational_dropout", 500.0), ("variational_dropout", 5000.0)]
  magnitude = summary["twins"][1]
  np.testing.assert_allclose(magnitude["sparsity"], 0.9, atol=0.002)
  np.testing.assert_allclose(summary["twins"][3]["sparsity"], 0.9, atol=0.002)
  assert len(magnitude["agreement"]) == 2 and all(0 <= a <= 1 for a in magnitude["agreement"])
  assert len(magnitude["cohen_kappa"]) == 2
  assert len(magnitude["accuracy_per_epoch"]) == 2
  assert all(set(row) >= {"claim", "statistic", "value", "ci_low", "ci_high", "verdict"}
             for row in summary["claims"])
  report = open(os.path.join(workdir, "report.md")).read()
  assert "| magnitude (layerwise) | target 0.9 |" in report and "## Claims" in report


def test_every_twin_evaluation_logs_its_agreement_with_the_original(study):
  _, _, workdir, summary = study
  for entry in summary["twins"]:
    run_dir = os.path.join(workdir, entry["workdir"])
    rows = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    final = {row["member"]: row["agreement"] for row in rows if row["epoch"] == 2}
    level = sorted(final)[len(final) // 2:] if entry["level"] in (0.9, 5000.0) else \
        sorted(final)[:len(final) // 2]
    np.testing.assert_allclose([final[member] for member in level], entry["agreement"],
                               rtol=1e-6)
    assert all(0 <= row["agreement"] <= 1 for row in rows)


def test_twin_metadata_points_at_its_original(study):
  """All levels of a method are one population, level-major: twin k * P + i is original
  member i's twin at the k-th level, with its hyperparameters and starting weights."""
  _, _, workdir, _ = study
  run_dir = os.path.join(workdir, "twins", "magnitude_layerwise")
  metadata = workdir_lib.read_metadata(run_dir)
  assert os.path.normpath(os.path.join(run_dir, metadata["original"]["workdir"])) == \
      os.path.join(workdir, "original")
  original = workdir_lib.read_metadata(os.path.join(workdir, "original"))["members"]
  twins_table = metadata["members"]
  assert len(twins_table) == 2 * len(original)
  for index, twin_row in enumerate(twins_table):
    original_row = original[index % len(original)]
    for field in ("seed", "activation", "learning_rate", "optimizer", "initializer"):
      assert twin_row[field] == original_row[field]
    assert twin_row["sparsity"] == (0.5, 0.9)[index // len(original)]
  vd = workdir_lib.read_metadata(os.path.join(workdir, "twins", "variational_dropout"))
  assert [row["kl_weight"] for row in vd["members"]] == [500.0, 500.0, 5000.0, 5000.0]


def test_restored_twins_evaluate_to_the_summary(study):
  config, data, workdir, summary = study
  state, table = twins.load_twins(workdir, "magnitude", 0.9)
  assert list(table["original_member"]) == [0, 1]
  model = build.load_setup(os.path.join(workdir, "twins", "magnitude_layerwise")).model
  run = twins.twin_runs(config, workdir)[0]
  method = sparsify.get_method(twins.twin_config(config, run).sparsify,
                               sparsify.TrainingSchedule(1))
  accuracy = engine.evaluate(engine.Program(model, method, eval_batch_size=32), state,
                             population.member_hyperparameters(table),
                             jnp.asarray(data.test_images), jnp.asarray(data.test_labels))[
                                 "accuracy"]
  np.testing.assert_allclose(accuracy, summary["twins"][1]["twin_accuracy"], rtol=1e-6)
  np.testing.assert_allclose(table["test_accuracy"], summary["twins"][1]["twin_accuracy"])


def test_rerun_recomputes_only_what_is_missing(study, capsys):
  config, data, workdir, summary = study
  finished = os.path.join(workdir, "twins", "magnitude_layerwise", "checkpoints")
  before = {name: os.path.getmtime(os.path.join(finished, name)) for name in os.listdir(finished)}
  # An interrupted last run: its checkpoint, metrics and cached predictions are gone.
  lost = os.path.join(workdir, "twins", "variational_dropout")
  for name in ("members.csv", "predictions.npz", "metrics.jsonl"):
    os.remove(os.path.join(lost, name))
  shutil.rmtree(os.path.join(lost, "checkpoints"))
  os.remove(os.path.join(workdir, "report.md"))
  again = twins.run_study(config, workdir, data)
  output = capsys.readouterr().out
  assert output.count("Already trained") == 3  # the original and two magnitude populations
  assert {name: os.path.getmtime(os.path.join(finished, name))
          for name in os.listdir(finished)} == before
  assert again == summary
  assert os.path.exists(os.path.join(workdir, "report.md"))


def test_vd_clip_table_counts_each_twins_clipped_and_kept_weights(study):
  """experiments/vd_clip.py against NumPy: the share of a twin's kernel weights its
  original had beyond the clip (|theta| > 1/e in convolutions, > 1 in dense layers) and
  the twin's sparsity from its masks."""
  import sys
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "experiments"))
  import vd_clip
  _, _, workdir, _ = study
  rows = vd_clip.clip_table(workdir, 5000.0)
  state, table = twins.load_twins(workdir, "variational_dropout", 5000.0)
  original, _ = checkpoints.load_population(os.path.join(workdir, "original"))
  assert len(rows) == len(table) and (rows["bound"] < 1).all()  # some weights clipped
  for twin, member in enumerate(table["original_member"]):
    kernels = {name: np.asarray(layer["kernel"][member])
               for name, layer in original.params.items() if "kernel" in layer}
    clipped = sum(np.sum(np.abs(k) > (np.exp(-1) if k.ndim == 4 else 1.0)) for k in kernels.values())
    total = sum(k.size for k in kernels.values())
    kept = sum(np.sum(np.asarray(state.sparsity_state.masks[name]["kernel"][twin]))
               for name in kernels)
    np.testing.assert_allclose(rows["bound"][twin], 1 - clipped / total, atol=1e-6)
    np.testing.assert_allclose(rows["achieved_sparsity"][twin], 1 - kept / total, atol=1e-6)


def test_a_finished_study_grows_by_levels_and_epochs_training_only_what_is_new(tmp_path,
                                                                               capsys):
  from jaxsparse.errors import UserError
  config = make_tiny_study_config(sparsities=(0.5,), kl_weights=(500.0,), scopes=("global",))
  config.twins.methods = ("magnitude",)
  data = random_dataset(num_train=64)
  workdir = str(tmp_path)
  twins.run_study(config, workdir, data)
  first = os.path.join(workdir, "twins", "magnitude_global")
  before = {name: os.path.getmtime(os.path.join(first, "checkpoints", name))
            for name in os.listdir(os.path.join(first, "checkpoints"))}
  capsys.readouterr()
  config.twins.sparsities = (0.5, 0.9)
  summary = twins.run_study(config, workdir, data)
  out = capsys.readouterr().out
  assert "magnitude_global+0.9" in out and out.count("nothing to do") == 2  # zoo, 0.5 twins
  assert {name: os.path.getmtime(os.path.join(first, "checkpoints", name))
          for name in os.listdir(os.path.join(first, "checkpoints"))} == before
  assert [(entry["series"], entry["level"]) for entry in summary["twins"]] == [
      ("magnitude (global)", 0.5), ("magnitude (global)", 0.9)]
  np.testing.assert_allclose(summary["twins"][1]["sparsity"], 0.9, atol=0.002)
  state, table = twins.load_twins(workdir, "magnitude", 0.9, scope="global")
  assert len(table) == 2
  # Two more fine-tuning epochs: both populations extend, the zoo does not change.
  config.twins.num_epochs = 3
  summary = twins.run_study(config, workdir, data)
  assert all(len(entry["accuracy_per_epoch"]) == 3 for entry in summary["twins"])
  config.twins.sparsities = (0.9,)
  with pytest.raises(UserError, match="no longer lists 0.5, which twins/magnitude_global "
                                      "trained"):
    twins.run_study(config, workdir, data)


def test_a_study_resolves_its_config_once_and_never_completes_it_again(tmp_path, monkeypatch):
  """The config is resolved at the door; nothing on the way down completes or re-resolves
  it, nor reads back the zoo's metadata that the study has just written."""
  from jaxsparse import build, config as config_lib
  calls = []
  for module in (config_lib, build, twins):
    for name in ("completed_config", "resolve"):
      if hasattr(module, name):
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *args, _name=name, _original=original, **kw: (
            calls.append(_name), _original(*args, **kw))[1])
  config = make_tiny_study_config(sparsities=(0.5,), scopes=("global",))
  config.twins.methods = ("magnitude",)
  twins.run_study(config, str(tmp_path / "study"), random_dataset(num_train=64))
  assert calls == ["resolve"]

"""The quick start's first command (configs/smoke.py) runs end to end, as a user runs it."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from jaxsparse import data

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(not os.path.isdir(data.DEBIAN_FASHION_MNIST_DIR),
                    reason="needs Debian's dataset-fashion-mnist (make test installs it)")
def test_smoke_config_trains_prunes_and_writes_everything(tmp_path):
  workdir = tmp_path / "smoke"
  result = subprocess.run(
      [sys.executable, "-m", "jaxsparse.main", "--config=configs/smoke.py", f"--workdir={workdir}"],
      cwd=REPOSITORY, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "Population after epoch 1 (4 members)" in result.stdout
  members = pd.read_csv(workdir / "members.csv")
  assert len(members) == 4 and sorted(members["sparsity"]) == [0.5, 0.5, 0.9, 0.9]
  # Gradual pruning ends on its target at the last step of the epoch.
  assert (abs(members["achieved_sparsity"] - members["sparsity"]) < 0.01).all()
  # Better than chance (10 classes) after one epoch on 2,000 images.
  assert (members["test_accuracy"] > 0.15).all()
  for name in ("metadata.json", "metrics.jsonl", "predictions.npz", "checkpoints/1"):
    assert (workdir / name).exists(), name
  stamp = json.loads((workdir / "provenance.json").read_text())
  assert stamp["command"] == (f"python -m jaxsparse.main --config=configs/smoke.py "
                              f"--workdir={workdir}")
  assert stamp["commit"] and "CPU cores" in stamp["machine"]
  # TensorFlow is not needed for Fashion-MNIST, so it is not imported (and logs nothing).
  assert "oneDNN" not in result.stderr and "tensorflow" not in result.stderr.lower()

"""How long importing a ResNet-18 model zoo takes: a synthetic zoo of --members trials,
written by torchvision's ResNet as the zoos' ``def_net.py`` builds it (the tests' writer,
``tests/test_modelzoo_resnet18.py``), imported with the command a user runs.

  python experiments/resnet18_import_time.py --workdir=runs/resnet18_import
  python experiments/resnet18_import_time.py --workdir=runs/resnet18_import --evaluate \\
      --dataset=tiny_imagenet --data_dir=/data/tiny-imagenet-200 --classes=200

Without ``--evaluate`` the import runs with ``--no_evaluation`` (no dataset needed); the
time is the wall clock of ``python -m jaxsparse.modelzoo import`` (start-up included).
``--synthetic_examples=N`` also times an import that evaluates the members on N random
32x32x3 images per split (what evaluation costs, without the dataset).
Writes ``results.json`` and ``provenance.json`` under ``--workdir``.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, ROOT)

from jaxsparse import provenance  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "where the zoo, the import and the results go")
flags.DEFINE_integer("members", 10, "trials in the zoo")
flags.DEFINE_integer("classes", 10,
                     "model::o_dim (10: CIFAR-10, 100: CIFAR-100, 200: Tiny-ImageNet)")
flags.DEFINE_string("dataset", "cifar10", "--dataset of the import")
flags.DEFINE_string("data_dir", "", "--data_dir of the import (tiny_imagenet)")
flags.DEFINE_bool("evaluate", False, "evaluate the members (needs the dataset)")
flags.DEFINE_integer("synthetic_examples", 0, "> 0: also time an import (Python API) that "
                     "evaluates the members on random images, this many per split")
flags.mark_flag_as_required("workdir")


def main(argv) -> None:
  del argv
  from test_modelzoo_resnet18 import write_resnet18_zoo  # needs torch and torchvision
  started = time.time()
  workdir = pathlib.Path(FLAGS.workdir)
  shutil.rmtree(workdir, ignore_errors=True)
  start = time.perf_counter()
  write_resnet18_zoo(workdir / "zoo", FLAGS.members, FLAGS.classes)
  written = time.perf_counter() - start
  command = [sys.executable, "-m", "jaxsparse.modelzoo", "import", str(workdir / "zoo"),
             f"--workdir={workdir / 'imported'}", f"--dataset={FLAGS.dataset}",
             f"--data_dir={FLAGS.data_dir}"] + ([] if FLAGS.evaluate else ["--no_evaluation"])
  start = time.perf_counter()
  subprocess.run(command, cwd=ROOT, check=True)
  seconds = time.perf_counter() - start
  results = {"members": FLAGS.members, "classes": FLAGS.classes, "dataset": FLAGS.dataset,
             "evaluated": FLAGS.evaluate, "import_seconds": round(seconds, 1),
             "zoo_write_seconds": round(written, 1), "command": " ".join(command[1:])}
  if FLAGS.synthetic_examples:
    results["synthetic_examples_per_split"] = FLAGS.synthetic_examples
    results["evaluated_import_seconds"] = round(_evaluated_import(workdir), 1)
  (workdir / "results.json").write_text(json.dumps(results, indent=1))
  provenance.write(str(workdir), started)
  print(json.dumps(results, indent=1))


def _evaluated_import(workdir: pathlib.Path) -> float:
  """Seconds of an in-process import that evaluates the zoo on random CIFAR-shaped images
  (validation and test splits of --synthetic_examples each; compilation included)."""
  import numpy as np
  from jaxsparse.data import Dataset
  from jaxsparse.modelzoo import import_zoo
  rng = np.random.default_rng(0)
  count = FLAGS.synthetic_examples
  split = lambda n: (rng.normal(size=(n, 32, 32, 3)).astype(np.float32),
                     rng.integers(0, FLAGS.classes, n).astype(np.int32))
  dataset = Dataset("synthetic", FLAGS.classes, *split(count), *split(count), *split(count))
  start = time.perf_counter()
  import_zoo(str(workdir / "zoo"), str(workdir / "evaluated"), dataset=dataset)
  return time.perf_counter() - start


if __name__ == "__main__":
  app.run(main)

"""Every Python snippet in README.md and docs/*.md runs, as a reader would paste it, and every
relative link in the docs resolves.

The snippets of one file run in order in one fresh Python process (a later snippet may
use what an earlier one defined, as a reader's session would), in a directory holding
what they read: ``runs/smoke`` (a 4-member run), ``runs/default`` (a twins study with
magnitude twins of both scopes at 50 and 90 %), ``flat/`` (an arrays export) and the
repository's ``configs/``, all tiny. A snippet that is an interface sketch, not a
program, is marked ``<!-- not run: why -->`` on the line above its fence. A snippet
that defines ``get_config`` has its config resolved.
"""

import glob
import os
import re
import subprocess
import sys

import pytest

from conftest import make_tiny_config, make_tiny_study_config, random_dataset
from jaxsparse import data, train, twins
from jaxsparse.modelzoo import exporter

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FENCE = re.compile(r"(?:<!-- not run: (?P<why>[^>]*) -->\n)?```python\n(?P<code>.*?)```",
                   re.DOTALL)
DOCS = ["README.md"] + sorted(os.path.relpath(path, REPOSITORY) for path in
                              glob.glob(os.path.join(REPOSITORY, "docs", "*.md")))


def snippets(path: str) -> list[tuple[str, str | None]]:
  """(code, why it is not run or None) of every Python snippet in ``path``, in order."""
  with open(os.path.join(REPOSITORY, path)) as file:
    text = file.read()
  return [(match["code"], match["why"]) for match in FENCE.finditer(text)]


def test_snippets_are_found_and_only_sketches_are_skipped():
  found = {path: snippets(path) for path in DOCS}
  assert sum(len(found_in) for found_in in found.values()) >= 8
  assert len(found["README.md"]) >= 4
  skipped = [why for found_in in found.values() for _, why in found_in if why is not None]
  assert all(why.strip() for why in skipped) and len(skipped) <= 2


@pytest.fixture(scope="module")
def reader_directory(tmp_path_factory):
  directory = tmp_path_factory.mktemp("reader")
  dataset = random_dataset(num_train=64)
  train.train_and_evaluate(make_tiny_config(), str(directory / "runs" / "smoke"), dataset)
  twins.run_study(make_tiny_study_config(sparsities=(0.5, 0.9)),
                  str(directory / "runs" / "default"), dataset)
  exporter.export_run(str(directory / "runs" / "default" / "original"), str(directory / "flat"),
                      format="arrays")
  os.symlink(os.path.join(REPOSITORY, "configs"), directory / "configs")
  return directory


def _program(path: str) -> str:
  parts = []
  for index, (code, why) in enumerate(snippets(path)):
    if why is None:
      parts.append(f"# --- snippet {index + 1} of {path}\n{code}")
      if "def get_config" in code:
        parts.append("from jaxsparse.config import resolve\nresolve(get_config())\n")
  return "\n".join(parts)


@pytest.mark.slow  # a tiny study and a process per file: make test-all runs it
@pytest.mark.parametrize("path", [path for path in DOCS if any(
    why is None for _, why in snippets(path))])
def test_snippets_run(path, reader_directory):
  if "configs/smoke.py" in _program(path) and not os.path.isdir(data.DEBIAN_FASHION_MNIST_DIR):
    pytest.skip("reads Fashion-MNIST (make test installs Debian's dataset-fashion-mnist)")
  environment = {**os.environ, "PYTHONPATH": REPOSITORY, "MPLBACKEND": "Agg"}
  result = subprocess.run([sys.executable, "-c", _program(path)], cwd=reader_directory,
                          capture_output=True, text=True, timeout=600, env=environment)
  assert result.returncode == 0, f"a snippet of {path} fails:\n{result.stderr[-3000:]}"


LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)#\s]+)(?:#[^)]*)?\)")


def test_relative_links_resolve():
  pages = DOCS + [os.path.relpath(path, REPOSITORY) for path in
                  glob.glob(os.path.join(REPOSITORY, "docs", "history", "*.md"))]
  broken = [f"{page}: {target}" for page in pages
            for target in LINK.findall(open(os.path.join(REPOSITORY, page)).read())
            if not os.path.exists(os.path.join(REPOSITORY, os.path.dirname(page), target))]
  assert broken == []

"""Runs pytest once per test file, a few files at a time, each in a process of its own.

  python tests/run_by_file.py --jobs 2 -m slow tests [more pytest arguments]

The slow tier runs this way (``make test-slow``). On 2026-12-05 XLA's CPU compiler crashed
(a segmentation fault, once an abort) in 3 of 3 slow-tier runs under pytest-xdist, each
time in a worker process that had earlier run other files' tests, PyTorch's included, and
at a different test each time; every file passed in a process of its own. So here no two
files share a process: what one file's tests load cannot break another's, and a crashed
process is one failed file with its output, where pytest-xdist waited for the crashed
worker's remaining tests until CI's time ran out.

Prints each file's result as it ends (all its output if it failed) and a summary; exits 1
if any file failed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import subprocess
import sys
import time

PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir=."]
#: pytest's exit status when a file has no test to run (here: none selected by -m).
NO_TESTS = 5


def test_files(pytest_arguments: list[str]) -> list[str]:
  """The files holding the tests that ``pytest_arguments`` select, in collection order."""
  collected = subprocess.run(PYTEST + ["--collect-only", "-q", *pytest_arguments],
                             capture_output=True, text=True, check=False)
  if collected.returncode not in (0, NO_TESTS):
    sys.exit(f"error: pytest could not collect the tests:\n{collected.stdout}{collected.stderr}")
  files = [line.split("::")[0] for line in collected.stdout.splitlines() if "::" in line]
  if "" in files:
    sys.exit("error: give test files under the current directory (run from the repository)")
  return list(dict.fromkeys(files))


def run_file(path: str, pytest_arguments: list[str]) -> tuple[str, int, str, float]:
  """Runs the selected tests of one file: (path, exit status, output, seconds)."""
  started = time.time()
  result = subprocess.run(PYTEST + ["-q", *_without_paths(pytest_arguments), path],
                          capture_output=True, text=True, check=False)
  return path, result.returncode, result.stdout + result.stderr, time.time() - started


def _without_paths(pytest_arguments: list[str]) -> list[str]:
  """``pytest_arguments`` less the test paths (each file is given on its own)."""
  kept, takes_value = [], False
  for argument in pytest_arguments:
    if takes_value or argument.startswith("-"):
      kept.append(argument)
      takes_value = argument in ("-m", "-k", "-o", "-p", "--durations")
    else:
      takes_value = False
  return kept


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--jobs", type=int, default=2, help="files run at once")
  options, pytest_arguments = parser.parse_known_args()
  files = test_files(pytest_arguments)
  started, failed = time.time(), []
  with concurrent.futures.ThreadPoolExecutor(options.jobs) as pool:
    runs = [pool.submit(run_file, path, pytest_arguments) for path in files]
    for run in concurrent.futures.as_completed(runs):
      path, status, output, seconds = run.result()
      summary = (f"the process died (signal {-status})" if status < 0
                 else output.strip().splitlines()[-1] if output.strip() else "(no output)")
      print(f"{path}: {summary} ({seconds:.0f} s)", flush=True)
      if status not in (0, NO_TESTS):
        failed.append(path)
        print(output, flush=True)
  elapsed = (time.time() - started) / 60
  print(f"{len(files) - len(failed)} of {len(files)} files passed in {elapsed:.1f} min"
        + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())

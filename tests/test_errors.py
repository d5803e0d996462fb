"""Command lines end a user's mistake with one line, not a traceback."""

import os
import subprocess
import sys

import pytest

from jaxsparse import errors

ROOT = os.path.join(os.path.dirname(__file__), "..")


def test_a_user_error_ends_the_command_with_one_line_and_status_2(capsys):
  @errors.exit_on_user_error
  def main(field):
    raise errors.invalid_field(field, -1, "give a positive number")

  with pytest.raises(SystemExit) as exit_info:
    main("training.batch_size")
  assert exit_info.value.code == 2
  assert capsys.readouterr().err == ("error: config.training.batch_size=-1 is invalid: give a "
                                     "positive number\n")


def test_other_errors_are_not_swallowed():
  @errors.exit_on_user_error
  def main():
    raise ValueError("a bug")

  with pytest.raises(ValueError, match="a bug"):
    main()


@pytest.mark.slow  # a subprocess that imports JAX and loads the data: make test-all runs it
def test_an_experiment_script_reports_an_unwritable_workdir_in_one_line(tmp_path):
  not_a_directory = tmp_path / "results.txt"
  not_a_directory.write_text("a file, not a directory")
  done = subprocess.run(
      [sys.executable, os.path.join(ROOT, "experiments", "gap_claim.py"),
       f"--workdir={not_a_directory}", "--quick"],
      capture_output=True, text=True, timeout=300)
  assert done.returncode == 2, done.stderr
  assert "Traceback" not in done.stderr
  assert done.stderr.strip().splitlines() == [
      f"error: cannot write to --workdir={not_a_directory}/cnn_s/dense (Not a directory); "
      "choose a writable directory"]
  assert not_a_directory.read_text() == "a file, not a directory"

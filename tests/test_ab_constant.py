"""experiments/ab_constant.py: a constant's two values, each timed with its own compiled
program, in alternating rounds, and the constant restored (no training here: the engine's
steps are replaced by a recorder)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "experiments"))
import ab_constant  # noqa: E402
import bench_population  # noqa: E402
from jaxsparse import engine, layers  # noqa: E402
from jaxsparse.errors import UserError  # noqa: E402

CONSTANT = "layers.TRANSPOSED_PATCHES_MAX_WIDTH_RATIO"


@pytest.mark.parametrize("name,message", [
    ("TRANSPOSED_PATCHES_MAX_WIDTH_RATIO", "give it as module.NAME"),
    ("no_such_module.X", "there is no module jaxsparse.no_such_module"),
    ("layers.NO_SUCH_CONSTANT", "jaxsparse.layers has no NO_SUCH_CONSTANT"),
])
def test_a_constant_that_is_not_there_is_a_one_line_error(name, message):
  with pytest.raises(UserError, match=message):
    ab_constant.parse_constant(name)


def test_values_take_the_constants_type():
  assert ab_constant.parse_value("2", 1) == 2 and isinstance(ab_constant.parse_value("2", 1), int)
  assert ab_constant.parse_value("0.5", 1.0) == 0.5
  assert ab_constant.parse_value("False", True) is False
  with pytest.raises(UserError, match="'x' is not of the constant's type, int"):
    ab_constant.parse_value("x", 1)
  with pytest.raises(UserError, match="give True or False"):
    ab_constant.parse_value("yes", True)


def test_each_value_runs_its_own_program_in_alternating_rounds(monkeypatch):
  calls = []
  original_programs = engine.TRAIN_EPOCH_PROGRAMS

  def fake_engine_steps(method, model, population, batch, steps, chunk):
    index = len({id(programs) for _, programs in calls})  # 0 for the first value's steps

    def run_steps():
      calls.append((layers.TRANSPOSED_PATCHES_MAX_WIDTH_RATIO, engine.TRAIN_EPOCH_PROGRAMS))
      seen.append(index)
    return run_steps

  seen, made_with = [], []
  monkeypatch.setattr(bench_population, "engine_steps", fake_engine_steps)
  make_programs = engine.train_epoch_programs
  monkeypatch.setattr(engine, "train_epoch_programs", lambda function: (
      made_with.append(layers.TRANSPOSED_PATCHES_MAX_WIDTH_RATIO) or make_programs(function)))
  result = ab_constant.compare(CONSTANT, ("0", "5"), "none", "cnn_s", 10, 10, rounds=3)
  assert made_with == [0, 5]  # each value's programs made with it set (constants they read)
  assert layers.TRANSPOSED_PATCHES_MAX_WIDTH_RATIO == 2  # restored
  assert engine.TRAIN_EPOCH_PROGRAMS is original_programs
  # The compiling calls, then rounds of 3 timed calls per value: 0 then 5, 5 then 0, 0 then 5.
  assert seen == [0, 1] + [0] * 3 + [1] * 3 + [1] * 3 + [0] * 3 + [0] * 3 + [1] * 3
  for index, (value, programs) in zip(seen, calls):
    assert value == (0, 5)[index]  # every call of a value's steps sees that value ...
    assert programs is not original_programs  # ... and a program of its own
  assert len({id(programs) for _, programs in calls}) == 2
  assert result["values"] == ["0", "5"] and len(result["rates"][0]) == 3
  ratios = [b / a for a, b in zip(*result["rates"])]
  assert result["ratio_median"] == sorted(ratios)[1]
  assert "5 over 0: median" in ab_constant.summary(result)


def test_a_failing_step_leaves_the_constant_and_the_engine_as_they_were(monkeypatch):
  original_programs = engine.TRAIN_EPOCH_PROGRAMS

  def failing_engine_steps(*args):
    def run_steps():
      raise RuntimeError("out of memory")
    return run_steps

  monkeypatch.setattr(bench_population, "engine_steps", failing_engine_steps)
  with pytest.raises(RuntimeError, match="out of memory"):
    ab_constant.compare(CONSTANT, ("0", "5"), "none", "cnn_s", 10, 10, rounds=1)
  assert layers.TRANSPOSED_PATCHES_MAX_WIDTH_RATIO == 2
  assert engine.TRAIN_EPOCH_PROGRAMS is original_programs

"""experiments/roofline.py classes XLA's operations by what their optimized HLO computes."""

import os
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "experiments"))
import roofline  # noqa: E402


def _kinds(function, *arguments):
  text = jax.jit(function).lower(*arguments).compile().as_text()
  computations, instructions = roofline.parse_hlo(text)
  return {roofline.kind_of(opcode, called, computations)
          for opcode, called in instructions.values()}, computations


def test_matmuls_convolutions_reductions_and_loops_are_told_apart():
  x, w = jnp.ones((8, 16)), jnp.ones((16, 4))
  kinds, computations = _kinds(lambda x, w: jnp.tanh(x @ w).sum(), x, w)
  assert {"matrix multiply", "reduction"} <= kinds
  assert all(isinstance(body, list) for body in computations.values())
  image, kernel = jnp.ones((2, 1, 9, 9)), jnp.ones((3, 1, 3, 3))
  kinds, _ = _kinds(lambda a, b: jax.lax.conv(a, b, (1, 1), "VALID"), image, kernel)
  assert "convolution" in kinds
  kinds, _ = _kinds(lambda a: jax.lax.fori_loop(0, 3, lambda i, c: c * 2.0 + 1.0, a), x)
  assert "container" in kinds and "matrix multiply" not in kinds


def test_fused_and_plain_operations_by_their_body():
  computations = {"fused.1": ["parameter", "parameter", "dot"],
                  "fused.2": ["parameter", "transpose", "copy"],
                  "fused.3": ["parameter", "multiply", "add"]}
  assert roofline.kind_of("fusion", "fused.1", computations) == "matrix multiply"
  assert roofline.kind_of("fusion", "fused.2", computations) == "data movement"
  assert roofline.kind_of("fusion", "fused.3", computations) == "elementwise"
  assert roofline.kind_of("while", None, computations) == "container"
  assert roofline.kind_of("transpose", None, computations) == "data movement"


def test_the_heaviest_operations_are_ranked_with_their_origin():
  text = jax.jit(lambda x, w: jnp.tanh(x @ w).sum()).lower(
      jnp.ones((8, 16)), jnp.ones((16, 4))).compile().as_text()
  computations, instructions = roofline.parse_hlo(text)
  described = roofline.describe_operations(text)
  dot = next(name for name, (opcode, _) in instructions.items() if opcode == "dot")
  assert described[dot][0].startswith("f32[8,4]") and described[dot][1].endswith("dot_general")
  kinds = {("m", name): roofline.kind_of(opcode, called, computations)
           for name, (opcode, called) in instructions.items()}
  seconds = {("m", name): float(index + 1) for index, name in enumerate(instructions)}
  seconds[("m", "loop")], kinds[("m", "loop")] = 1e6, "container"  # never listed
  top = roofline.top_operations(seconds, kinds, {("m", k): v for k, v in described.items()}, 2)
  expected = sorted((key for key in seconds if kinds[key] != "container"),
                    key=lambda key: -seconds[key])[:2]
  assert list(top["operation"]) == [key[1] for key in expected]
  total = sum(value for key, value in seconds.items() if kinds[key] != "container")
  assert top["share"].iloc[0] == seconds[expected[0]] / total
  assert roofline.time_by_kind(seconds, kinds)["matrix multiply"] == sum(
      value for key, value in seconds.items() if kinds[key] == "matrix multiply")

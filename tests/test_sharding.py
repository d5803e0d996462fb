"""The population axis sharded over 8 (virtual CPU) devices gives the single-device results.

JAX fixes its device count at import, and the other tests' process has
imported it with one device, so each check runs in a fresh interpreter with
``XLA_FLAGS=--xla_force_host_platform_device_count=8``.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow  # end-to-end: make test-all runs it

TESTS = os.path.dirname(os.path.abspath(__file__))
REPOSITORY = os.path.dirname(TESTS)


def run_with_8_devices(code: str) -> str:
  environment = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
                     JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join([REPOSITORY, TESTS]))
  result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPOSITORY,
                          env=environment, capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  return result.stdout


def test_population_of_20_on_8_devices_equals_1_device(tmp_path):
  output = run_with_8_devices(f"""
      import jax, numpy as np
      from jaxsparse import checkpoints
      from jaxsparse.train import train_and_evaluate
      from conftest import make_tiny_config, random_dataset
      assert jax.device_count() == 8
      config = make_tiny_config()
      config.population.grid.activation = ("tanh", "relu")
      config.population.grid.optimizer = ("adam", "sgd")
      config.population.num_seeds = 5                      # 20 members
      # The banded convolution's batched matmul rounds differently for 3 and
      # 20 members per device (Adam then amplifies it where a gradient is ~0);
      # im2col's GEMMs do not, so the comparison below can stay at float32 rounding.
      config.model.conv_implementation = "im2col"
      config.sparsify.method = "magnitude"
      config.population.grid.sparsity = (0.5,)
      data = random_dataset(num_train=96)

      config.population.num_devices = 1
      single = train_and_evaluate(config, "{tmp_path}/single", data)

      class Stop(Exception):
        pass
      seen = {{}}
      def stop_after_epoch_1(epoch, state):
        kernel = state.params["Dense_0"]["kernel"]
        seen["members"], seen["devices"] = kernel.shape[0], len(kernel.sharding.device_set)
        raise Stop
      config.population.num_devices = 8                     # 4 padding members
      try:
        train_and_evaluate(config, "{tmp_path}/sharded", data, on_epoch_end=stop_after_epoch_1)
      except Stop:
        pass
      assert seen == {{"members": 24, "devices": 8}}, seen
      # The checkpoint written by 8 devices restores on one, without its padding.
      after_1, table = checkpoints.load_population("{tmp_path}/sharded", epoch=1)
      expected_1, _ = checkpoints.load_population("{tmp_path}/single", epoch=1)
      assert len(table) == 20

      def assert_same(restored, expected):
        for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(expected)):
          assert a.shape == b.shape and len(a.sharding.device_set) == 1, a.shape
          # float32 rounding only: XLA vectorises one device's 3 members
          # differently from 20 members.
          np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
      assert_same(after_1, expected_1)

      config.population.num_devices = 3                     # resumed on 3 devices: 1 padding
      sharded = train_and_evaluate(config, "{tmp_path}/sharded", data)
      columns = ["validation_accuracy", "test_accuracy", "achieved_sparsity"]
      np.testing.assert_array_equal(sharded[columns], single[columns])
      np.testing.assert_allclose(sharded["train_loss"], single["train_loss"], rtol=1e-6)
      assert_same(checkpoints.load_population("{tmp_path}/sharded")[0],
                  checkpoints.load_population("{tmp_path}/single")[0])
      print("OK")
  """)
  assert output.strip().endswith("OK")


def _free_port() -> int:
  import socket
  with socket.socket() as probe:
    probe.bind(("localhost", 0))
    return probe.getsockname()[1]


def _run_two_processes(program: str) -> list[str]:
  environment = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
                     JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join([REPOSITORY, TESTS]))
  processes = [subprocess.Popen([sys.executable, "-c", program, str(index)], cwd=REPOSITORY,
                                env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True) for index in range(2)]
  outputs = [process.communicate(timeout=900)[0] for process in processes]
  for process, output in zip(processes, outputs):
    assert process.returncode == 0, output[-4000:]
  return outputs


def test_two_processes_train_and_save_one_population_restored_in_one_process(tmp_path):
  """jax.distributed on localhost: 2 processes x 2 CPU devices train 6 members (2 padding),

  resume after losing metrics rows and predictions, and restore in one process.
  """
  port = _free_port()
  program = textwrap.dedent(f"""
      import sys
      import jax
      from jaxsparse import main
      from jaxsparse.train import train_and_evaluate
      from conftest import make_tiny_config, random_dataset
      config = make_tiny_config()
      config.population.grid.learning_rate = (3e-3, 1e-3, 3e-4)
      config.population.grid.activation = ("tanh", "relu")
      config.population.grid.optimizer = ("adam",)          # 6 members
      config.distributed.mode = "address"
      config.distributed.coordinator_address = "localhost:{port}"
      config.distributed.num_processes = 2
      config.distributed.process_id = int(sys.argv[1])
      main.start_distributed(config)
      assert jax.process_count() == 2 and jax.device_count() == 4, jax.devices()
      train_and_evaluate(config, "{tmp_path}/distributed", random_dataset(num_train=96))
      print("done", jax.process_index())
  """)
  _run_two_processes(program)
  # Lose the last epoch's rows and the final predictions: the resumed run
  # recomputes them from the checkpoint, collectively on both processes.
  run = tmp_path / "distributed"
  before = pd.read_csv(run / "members.csv")
  lines = (run / "metrics.jsonl").read_text().splitlines()
  (run / "metrics.jsonl").write_text("\n".join(lines[:-3]) + "\n")
  (run / "predictions.npz").unlink()
  outputs = _run_two_processes(program)
  assert "Recomputed the metrics of epoch 2" in outputs[0]
  after = pd.read_csv(run / "members.csv")
  np.testing.assert_array_equal(after["test_accuracy"], before["test_accuracy"])
  assert (run / "predictions.npz").exists()

  output = run_with_8_devices(f"""
      import jax, numpy as np
      from jaxsparse import checkpoints
      from jaxsparse.train import train_and_evaluate
      from conftest import make_tiny_config, random_dataset
      config = make_tiny_config()
      config.population.grid.learning_rate = (3e-3, 1e-3, 3e-4)
      config.population.grid.activation = ("tanh", "relu")
      config.population.grid.optimizer = ("adam",)
      config.population.num_devices = 1
      single = train_and_evaluate(config, "{tmp_path}/single", random_dataset(num_train=96))
      restored, table = checkpoints.load_population("{tmp_path}/distributed")
      expected, _ = checkpoints.load_population("{tmp_path}/single")
      assert len(table) == 6
      for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(expected)):
        assert a.shape == b.shape, (a.shape, b.shape)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
      import pandas as pd
      distributed = pd.read_csv("{tmp_path}/distributed/members.csv")
      np.testing.assert_array_equal(distributed["test_accuracy"], single["test_accuracy"])
      print("OK")
  """)
  assert output.strip().endswith("OK")

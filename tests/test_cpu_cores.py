"""jaxsparse.cpu_cores: one CPU device per core before JAX starts (JAX's public
jax_num_cpu_devices option), and never against the user's own count or after JAX has started (each case in a fresh interpreter where
JAX must start)."""

import os
import subprocess
import sys
import textwrap

from jaxsparse import cpu_cores

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAG = cpu_cores.DEVICE_COUNT_FLAG


def _device_counts(code: str, xla_flags: str = "", **variables) -> list[int]:
  """Runs ``code`` (which prints numbers) in a fresh CPU-only interpreter."""
  environment = {name: value for name, value in os.environ.items()
                 if name != "JAX_NUM_CPU_DEVICES"}
  environment.update(XLA_FLAGS=xla_flags, JAX_PLATFORMS="cpu", **variables)
  result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPOSITORY,
                          env=environment, capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  return [int(word) for word in result.stdout.split()]


SPLIT_THEN_COUNT = """
    from jaxsparse import cpu_cores
    cpu_cores.usable_cores = lambda: {cores}
    asked = cpu_cores.split_cpu_by_core()
    import jax
    print(asked, jax.device_count())
"""


def test_one_device_per_core_up_to_the_cap():
  assert _device_counts(SPLIT_THEN_COUNT.format(cores=3)) == [3, 3]
  many = cpu_cores.MAX_DEVICES + 4
  assert _device_counts(SPLIT_THEN_COUNT.format(cores=many)) == [cpu_cores.MAX_DEVICES] * 2


def test_one_core_and_the_users_own_count_are_left_alone():
  assert _device_counts(SPLIT_THEN_COUNT.format(cores=1)) == [0, 1]
  assert _device_counts(SPLIT_THEN_COUNT.format(cores=3), xla_flags=f"{FLAG}=1") == [0, 1]
  assert _device_counts(SPLIT_THEN_COUNT.format(cores=3), JAX_NUM_CPU_DEVICES="1") == [0, 1]


def test_other_xla_flags_are_kept():
  code = SPLIT_THEN_COUNT.format(cores=2) + """
    import os
    print(int("--xla_backend_optimization_level=0" in os.environ["XLA_FLAGS"]))
  """
  assert _device_counts(code, xla_flags="--xla_backend_optimization_level=0") == [2, 2, 1]


def test_nothing_changes_once_jax_has_started():
  code = """
    import jax
    jax.devices()
    from jaxsparse import cpu_cores
    cpu_cores.usable_cores = lambda: 3
    print(cpu_cores.split_cpu_by_core(), jax.device_count())
  """
  assert _device_counts(code) == [0, 1]

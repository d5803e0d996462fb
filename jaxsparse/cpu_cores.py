"""One JAX device per CPU core, so that a population trains on every core.

XLA:CPU runs the engine's small fused steps on about one thread: training
CNN-s members keeps one of a machine's two cores busy. Split into one device
per core, the CPU gets the members in blocks, one per core, through the
engine's member sharding (:mod:`jaxsparse.sharding`; ``population.num_devices
= 0``, the default, uses every device). On the project's 2-core machine this
trained 1.8 to 1.9x as many members per second at batch 10 and 1.4 to 1.5x at
batch 32 (docs/history/benchmarks-2026-11.md). Each device runs the single-device program on
its own block of members, so a member's numbers agree with a one-device run
to float rounding, not bit for bit (the compiled programs differ in how
many chunks of members they loop over; see docs/scaling.md).

The device count is JAX's ``jax_num_cpu_devices`` option, which JAX reads
when it starts its backends, so :func:`split_cpu_by_core` must run before the
first JAX computation. The command line (:mod:`jaxsparse.main`) and the
experiments call it first thing; a program of one's own calls it before
anything touches JAX. It leaves a count the user set alone
(``JAX_NUM_CPU_DEVICES``, or ``XLA_FLAGS``'s
``--xla_force_host_platform_device_count``), so
``JAX_NUM_CPU_DEVICES=1`` turns it off (as does
``--config.population.num_devices=1``). On a GPU or TPU the CPU devices are
not used and nothing changes.
"""

from __future__ import annotations

import os

DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"
#: At most this many CPU devices by default: every device holds its own copy of the
#: training set, and a many-core machine's matmuls already use several threads.
MAX_DEVICES = 8


def usable_cores() -> int:
  """The cores this process may run on (its CPU affinity, else the machine's count)."""
  if hasattr(os, "sched_getaffinity"):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def split_cpu_by_core(max_devices: int = MAX_DEVICES) -> int:
  """Asks JAX for one CPU device per usable core (at most ``max_devices``).

  Returns the count asked for, or 0 when it left things as they were: the
  user set a count (``JAX_NUM_CPU_DEVICES`` or ``XLA_FLAGS``), JAX has already
  started (too late to change it), or there is one core.
  """
  count = min(usable_cores(), max_devices)
  if (DEVICE_COUNT_FLAG in os.environ.get("XLA_FLAGS", "") or "JAX_NUM_CPU_DEVICES" in os.environ
      or count < 2):
    return 0
  import jax
  try:
    jax.config.update("jax_num_cpu_devices", count)
  except RuntimeError:  # the backends have started: too late
    return 0
  return count

"""One JAX device per CPU core, so that a population trains on every core.

XLA:CPU runs the engine's small fused steps on about one thread: training
CNN-s members keeps one of a machine's two cores busy. Split into one device
per core, the CPU gets the members in blocks, one per core, through the
engine's member sharding (:mod:`jaxsparse.sharding`; ``population.num_devices
= 0``, the default, uses every device). On the project's 2-core machine this
trained 1.8 to 1.9x as many members per second at batch 10 and 1.4 to 1.5x at
batch 32 (docs/benchmarks.md). Each device runs the single-device program on
its own block of members, so a member's numbers agree with a one-device run
to float rounding, not bit for bit (the compiled programs differ in how
many chunks of members they loop over; see docs/scaling.md).

The device count is an XLA flag that JAX reads when it starts its backends,
so :func:`split_cpu_by_core` must run before the first JAX computation. The
command line (:mod:`jaxsparse.main`) and the experiments call it first
thing; a program of one's own calls it before anything touches JAX. It
leaves an ``XLA_FLAGS`` that already sets the count alone, so
``XLA_FLAGS=--xla_force_host_platform_device_count=1`` turns it off (as does
``--config.population.num_devices=1``). On a GPU or TPU the CPU devices are
not used and nothing changes.
"""

from __future__ import annotations

import os
import sys

DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"
#: At most this many CPU devices by default: every device holds its own copy of the
#: training set, and a many-core machine's matmuls already use several threads.
MAX_DEVICES = 8


def usable_cores() -> int:
  """The cores this process may run on (its CPU affinity, else the machine's count)."""
  if hasattr(os, "sched_getaffinity"):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def _jax_started() -> bool:
  jax = sys.modules.get("jax")
  return jax is not None and jax._src.xla_bridge.backends_are_initialized()


def split_cpu_by_core(max_devices: int = MAX_DEVICES) -> int:
  """Asks XLA for one CPU device per usable core (at most ``max_devices``).

  Returns the count asked for, or 0 when it left things as they were:
  ``XLA_FLAGS`` already sets the count, JAX has already started (too late to
  change it), or there is one core.
  """
  flags = os.environ.get("XLA_FLAGS", "")
  count = min(usable_cores(), max_devices)
  if DEVICE_COUNT_FLAG in flags or count < 2 or _jax_started():
    return 0
  os.environ["XLA_FLAGS"] = f"{flags} {DEVICE_COUNT_FLAG}={count}".strip()
  return count

"""Sparsification methods as pure mask-update functions.

See :mod:`jaxsparse.sparsify.base` for the shape of a method and the registry.
Registered so far: 'none' (dense), 'magnitude' (one-shot, gradual and
iterative; layer-wise and global) and 'random' (random pruning / static
sparse training). Mask helpers shared by all methods live in
:mod:`jaxsparse.masks`, schedules in :mod:`jaxsparse.sparsify.schedules`.
"""

from jaxsparse.sparsify import (  # noqa: F401  (importing registers the methods)
    dense, magnitude, random_pruning, variational_dropout)
from jaxsparse.sparsify.base import (SparsifyMethod, TrainingSchedule, get_method, masked_forward,
                                     method_names, register, trainable, with_trainable)

__all__ = ["SparsifyMethod", "TrainingSchedule", "get_method", "masked_forward", "method_names",
           "register", "trainable", "with_trainable"]

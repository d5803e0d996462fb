"""Sparsification methods as pure mask-update functions.

See :mod:`jaxsparse.sparsify.base` for the shape of a method and the registry.
Registered: 'none' (dense), 'magnitude' (one-shot, gradual and iterative;
layer-wise, global and ERK), 'random' (random pruning / static sparse
training), 'variational_dropout', 'gumbel_softmax', 'edge_popup' and 'gap'
(cyclic grow-and-prune) and 'filter' (structured L1 filter pruning). Mask helpers shared by all methods live in
:mod:`jaxsparse.masks`, schedules in :mod:`jaxsparse.sparsify.schedules`.
"""

from jaxsparse.sparsify import (  # noqa: F401  (importing registers the methods)
    dense, edge_popup, filter_pruning, gap, gumbel_softmax, magnitude, random_pruning,
    variational_dropout)
from jaxsparse.sparsify.base import (SparsifyMethod, Target, TrainingSchedule, get_method,
                                     masked_forward, member_settings, method_names, register,
                                     trainable, with_trainable)

__all__ = ["SparsifyMethod", "Target", "TrainingSchedule", "get_method", "masked_forward",
           "member_settings", "method_names", "register", "trainable", "with_trainable"]

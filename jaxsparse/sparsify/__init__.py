"""Sparsification methods as pure mask-update functions, each declared in its own file.

See :mod:`jaxsparse.sparsify.base` for the shape of a method and
:mod:`jaxsparse.sparsify.registry` for its declaration (builder, config
fields, validation, per-member settings, twin levels). Built in: 'none'
(dense), 'magnitude' (one-shot, gradual and iterative; layer-wise, global and
ERK), 'random' (random pruning / static sparse training),
'variational_dropout', 'gumbel_softmax', 'edge_popup', 'gap' (cyclic
grow-and-prune), 'parallel_gap' and 'filter' (structured L1 filter pruning).
Mask helpers shared by all methods live in :mod:`jaxsparse.masks`, schedules
in :mod:`jaxsparse.sparsify.schedules`, shared config fields in
:mod:`jaxsparse.sparsify.fields`.
"""

from jaxsparse.sparsify.base import (CopyRounds, SparsifyMethod, Target, TrainingSchedule,
                                     masked_forward, trainable, with_trainable)
from jaxsparse.sparsify.registry import (DENSE, Field, MethodDeclaration, Settings, TwinLevel,
                                         allowing_modules, config_fields, declaration,
                                         declarations, get_method, import_method_module,
                                         import_recorded_module, member_settings, method_names,
                                         register, sweepable_settings, twin_levels)
# The built-in methods: importing a method's file registers it (one line each).
from jaxsparse.sparsify import dense  # noqa: E402,F401
from jaxsparse.sparsify import magnitude  # noqa: E402,F401
from jaxsparse.sparsify import random_pruning  # noqa: E402,F401
from jaxsparse.sparsify import variational_dropout  # noqa: E402,F401
from jaxsparse.sparsify import gumbel_softmax  # noqa: E402,F401
from jaxsparse.sparsify import edge_popup  # noqa: E402,F401
from jaxsparse.sparsify import gap  # noqa: E402,F401
from jaxsparse.sparsify import filter_pruning  # noqa: E402,F401

__all__ = ["CopyRounds", "DENSE", "Field", "MethodDeclaration", "Settings", "SparsifyMethod",
           "Target", "TrainingSchedule", "TwinLevel", "allowing_modules", "config_fields",
           "declaration", "declarations", "get_method", "import_method_module",
           "import_recorded_module", "masked_forward", "member_settings", "method_names",
           "register", "sweepable_settings", "trainable", "twin_levels", "with_trainable"]

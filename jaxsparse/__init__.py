"""jaxsparse: sparsify whole populations of neural networks (model zoos) in JAX.

Modules: :mod:`jaxsparse.models` (functional Flax models), :mod:`jaxsparse.population`
(grids of members), :mod:`jaxsparse.engine` (one compiled program per epoch of a
population), :mod:`jaxsparse.masks`, :mod:`jaxsparse.data`, :mod:`jaxsparse.config`,
:mod:`jaxsparse.checkpoints` (Orbax; loaders), :mod:`jaxsparse.train` and the CLI
:mod:`jaxsparse.main`.
"""

__version__ = "0.1.0"

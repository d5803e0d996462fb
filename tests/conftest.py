"""Shared test fixtures: small synthetic data and configs that train in seconds."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsparse import engine, optim, population
from jaxsparse.config import default_config
from jaxsparse.data import Dataset

#: One hyperparameter configuration: a grid with a single value per field.
SINGLE = dict(sparsity=(0.0,), activation=("tanh",), dropout_rate=(0.0,),
              initializer=("kaiming_uniform",), optimizer=("adam",), learning_rate=(3e-3,),
              weight_decay=(0.0,), momentum=(0.9,))


def random_dataset(num_train=256, shape=(28, 28, 1), num_classes=10, seed=0) -> Dataset:
  """A learnable synthetic dataset: the label is the brightest of 10 image regions."""
  rng = np.random.default_rng(seed)

  def split(n):
    images = rng.normal(size=(n, *shape)).astype(np.float32)
    labels = rng.integers(0, num_classes, n).astype(np.int32)
    rows = np.linspace(0, shape[0], num_classes + 1).astype(int)
    for index, label in enumerate(labels):
      images[index, rows[label]:rows[label + 1]] += 1.5
    return images, labels

  train, validation, test = split(num_train), split(64), split(64)
  return Dataset("synthetic", num_classes, *train, *validation, *test)


@pytest.fixture
def tiny_config():
  """A 4-member CNN-s zoo mixing activations and optimizers, 2 epochs of 8 steps."""
  return make_tiny_config()


def make_tiny_config():
  """The config of the ``tiny_config`` fixture (for module-scoped fixtures)."""
  config = default_config()
  config.population.grid.activation = ("tanh", "relu")
  config.population.grid.optimizer = ("adam", "sgd")
  config.population.grid.learning_rate = (3e-3,)
  config.training.num_epochs = 2
  config.training.batch_size = 32
  config.training.eval_batch_size = 32
  config.logging.progress = "none"
  config.logging.tensorboard = False
  return config


def make_two_member_config():
  """Two ReLU members (seeds 0 and 1) of the tiny config, 2 epochs: a finished run to break
  in end-to-end tests."""
  config = make_tiny_config()
  config.population.grid.activation = ("relu",)
  config.population.grid.optimizer = ("adam",)
  config.population.num_seeds = 2
  return config


def make_tiny_study_config(sparsities=(0.5, 0.9), kl_weights=(500.0, 5000.0), num_epochs=1,
                           scopes=("layerwise", "global")):
  """A twins study of the tiny zoo (Adam only): magnitude twins (both scopes) and VD twins,
  2 epochs on 48 examples, batch 16."""
  config = make_tiny_config()
  config.job = "twins"
  config.population.grid.optimizer = ("adam",)
  config.training.num_epochs = num_epochs
  config.training.batch_size = 16
  config.twins.methods = ("magnitude", "variational_dropout")
  config.twins.sparsities = sparsities
  config.twins.kl_weights = kl_weights
  config.twins.scopes = scopes
  config.twins.num_epochs = 2
  config.twins.train_examples = 48
  return config


def files_under(directory, describe):
  """``{path relative to directory: describe(path)}`` for every file under ``directory``."""
  return {os.path.relpath(os.path.join(root, name), directory): describe(os.path.join(root, name))
          for root, _, names in os.walk(directory) for name in names}


def method_settings(method: str, **changes):
  """``config.sparsify`` for ``method`` with ``changes``."""
  settings = default_config().sparsify
  settings.method = method
  settings.update(changes)
  return settings


def train_population(model, method, table, data, epochs=1, batch_size=32, chunk_size=0,
                     state=None, recipe=optim.Recipe(), shared_order_seed=-1):
  """Trains the members of ``table`` (from ``state`` or fresh, following ``recipe``; with
  ``shared_order_seed`` >= 0 all on the same batches) for ``epochs``; returns the state and
  the last epoch's metrics."""
  hyper = population.member_hyperparameters(table, recipe)
  program = engine.Program(model, method, batch_size, chunk_size=chunk_size,
                           shared_order_seed=shared_order_seed)
  if state is None:
    state = engine.init_population(program, hyper)
  images, labels = jnp.asarray(data.train_images), jnp.asarray(data.train_labels)
  steps = len(labels) // batch_size
  metrics = None
  for _ in range(epochs):
    first_step = int(state.epoch[0]) * steps
    state, metrics = engine.train_epoch(program, state, hyper, images, labels, first_step)
  return state, metrics


def assert_same_structure(actual, expected) -> None:
  """Two pytrees have one structure: the same containers, keys and ``None`` leaves."""
  structure = lambda tree: jax.tree.structure(tree, is_leaf=lambda leaf: leaf is None)
  assert structure(actual) == structure(expected), (structure(actual), structure(expected))


def assert_trees_close(actual, expected, rtol: float = 0.0, atol: float = 0.0,
                       where=None) -> None:
  """Two pytrees of one structure whose leaves are equal (the default) or close; ``where``
  (an index, e.g. a boolean member mask) compares only that part of every leaf. A failing
  leaf is named by its path."""
  assert_same_structure(actual, expected)
  for (path, leaf), other in zip(jax.tree_util.tree_leaves_with_path(actual),
                                 jax.tree.leaves(expected)):
    leaf, other = np.asarray(leaf), np.asarray(other)
    if where is not None:
      leaf, other = leaf[where], other[where]
    np.testing.assert_allclose(leaf, other, rtol=rtol, atol=atol,
                               err_msg=jax.tree_util.keystr(path))

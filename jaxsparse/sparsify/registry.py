"""Method declarations: everything the rest of jaxsparse knows about a method.

A method registers itself, in its own file, with :func:`register`::

    @register("my_method", fields={"strength": Field(1.0, "how hard it prunes", at_least(0))},
              member_settings=("strength",))
    def build(settings, training):   # settings: a frozen copy of config.sparsify
      strength = settings.strength   # unpack plain values; nothing mutable is captured
      return SparsifyMethod(init, update)

The declaration carries the builder, the ``config.sparsify`` fields the
method reads (with defaults, documentation and per-value checks), a
cross-field validation, the settings a population may sweep per member
(``config.population.method_grid``), whether the member's target sparsity
means anything to it, and what a sparsified-twins "level" sets for it.
:func:`jaxsparse.config.default_config`, :func:`jaxsparse.config.validate_config`,
the member table, the twins study and its report read these declarations;
none of them names a method.

A method in a user's own module is as first-class as a built-in one: select
it with ``config.sparsify.method = "my_package.my_module:my_method"`` (the
module is imported, which registers the method), or import the module in the
config file and use the bare name. A run records the method's module in its
``metadata.json``; loading the run imports that module only with the user's
consent (:func:`import_recorded_module`): a run directory is data, never code.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Iterator, NamedTuple

from jaxsparse import errors
from jaxsparse.errors import UserError, invalid_field
from jaxsparse.schema import Field  # noqa: F401 (methods declare their fields with it)
from jaxsparse.sparsify.base import SparsifyMethod, TrainingSchedule

#: The method of a dense zoo (all-ones masks); the default of ``config.sparsify.method``.
DENSE = "none"

#: Columns of a member table that a method's per-member setting may not take.
RESERVED_NAMES = ("member", "copy", "configuration", "seed", "sparsity", "activation",
                  "dropout_rate", "initializer", "optimizer", "learning_rate", "weight_decay",
                  "momentum", "method")

class TwinLevel(NamedTuple):
  """What one "level" of a sparsified-twins study sets for a method.

  Attributes:
    setting: ``'sparsity'`` (the members' target sparsity) or the name of a
      ``config.sparsify`` field (e.g. a KL weight, when sparsity is an outcome).
    levels_field: the ``config.twins`` field that lists the levels.
    default_levels: that field's default.
    label: how the report names a level, e.g. ``'target'`` or ``'KL weight'``.
  """
  setting: str = "sparsity"
  levels_field: str = "sparsities"
  default_levels: tuple = (0.5, 0.8, 0.9)
  label: str = "target"


#: The twin level of methods that prune to a target sparsity.
TARGET_SPARSITY = TwinLevel()


class MethodDeclaration(NamedTuple):
  """Everything about one method (see :func:`register`)."""
  name: str
  build: Callable[["Settings", TrainingSchedule], SparsifyMethod]
  fields: Mapping[str, Field]
  member_settings: tuple[str, ...]
  validate: Callable[[Any], None] | None
  twin_level: TwinLevel | None
  target_sparsity: str | None
  title: str
  abbreviation: str
  example: Mapping[str, Any]
  module: str
  uses_layer_order: bool = False
  summary: str = ""
  configs: tuple[str, ...] = ()
  uses_run_length: bool = False

  @property
  def uses_target_sparsity(self) -> bool:
    """Whether a member's target sparsity means anything to this method."""
    return self.target_sparsity is None


_DECLARATIONS: dict[str, MethodDeclaration] = {}
_FIELDS: dict[str, Field] = {}


def _check_declaration(name: str, fields: Mapping[str, Field], member_settings: tuple[str, ...],
                       twin_level: TwinLevel | None) -> None:
  """Raises ValueError (a mistake in the method's code, not in a config) unless its per-member
  settings are declared fields with free names, its twin level sets one of them (or the
  sparsity), and its fields' defaults agree with other methods' fields of the same name."""
  for setting in member_settings:
    if setting not in fields:
      raise ValueError(f"method {name!r} sweeps {setting!r} per member but does not declare it "
                       "in fields")
    if setting in RESERVED_NAMES:
      raise ValueError(f"method {name!r}: {setting!r} is a member-table column; rename it")
  if twin_level is not None and twin_level.setting != "sparsity" and \
      twin_level.setting not in member_settings:
    raise ValueError(f"method {name!r}: its twin level sets {twin_level.setting!r}, which must "
                     "be one of its member_settings (a study trains all levels as one "
                     "population)")
  for field_name, field in fields.items():
    known = _FIELDS.get(field_name)
    if known is not None and known.default != field.default:
      raise ValueError(f"method {name!r} declares config.sparsify.{field_name} with default "
                       f"{field.default!r}, but another method declares {known.default!r}")
    if field_name == "method":
      raise ValueError(f"method {name!r} may not declare a field named 'method'")


def register(name: str, *, fields: Mapping[str, Field] | None = None,
             member_settings: tuple[str, ...] = (),
             validate: Callable[[Any], None] | None = None,
             twin_level: TwinLevel | None = TARGET_SPARSITY,
             target_sparsity: str | None = None, title: str | None = None,
             abbreviation: str | None = None, example: Mapping[str, Any] | None = None,
             uses_layer_order: bool = False, summary: str = "",
             configs: tuple[str, ...] = (), uses_run_length: bool = False):
  """Decorator: declares the method ``name`` built by ``build(settings, training)``.

  Args:
    name: what ``config.sparsify.method`` says to select it.
    fields: the ``config.sparsify`` fields the builder reads, with their
      defaults. Methods share a field by declaring it with the same default
      (the shared ones are in :mod:`jaxsparse.sparsify.fields`).
    member_settings: fields of ``fields`` that may differ between members
      (``config.population.method_grid``); the method reads them from its
      :class:`jaxsparse.sparsify.Target` with ``target.setting(name, default)``.
    validate: ``(config) -> None``, cross-field checks on the whole config
      (raising :class:`jaxsparse.errors.UserError`), run when this method is
      selected; per-value checks belong in each :class:`Field`.
    twin_level: what a level of the twins study sets (None: the method makes
      no twins, e.g. the dense method).
    target_sparsity: None if the method prunes to each member's target
      sparsity; otherwise why a target other than 0 is refused (one line).
    title: the method's name in prose (default: ``name`` with spaces).
    abbreviation: a short form for tables (default: ``title``).
    example: settings of a two-epoch run on 4 steps per epoch that exercises
      the method (used by the tests every method must pass).
    uses_layer_order: whether the builder reads ``training.layer_order`` (the
      model's layers in network depth), which setup then traces for it.
    summary: what the method does, in one line (the README's methods table).
    configs: the config files in ``configs/`` that run it.
    uses_run_length: whether the builder reads ``training.num_steps`` (e.g. a
      temperature annealed over the whole run): then a longer run differs from its
      first epochs, so a finished run of it cannot be extended.
  """
  fields = dict(fields or {})
  _check_declaration(name, fields, member_settings, twin_level)

  def decorate(build):
    title_ = title or name.replace("_", " ")
    _DECLARATIONS[name] = MethodDeclaration(
        name=name, build=build, fields=fields, member_settings=tuple(member_settings),
        validate=validate, twin_level=twin_level, target_sparsity=target_sparsity,
        title=title_, abbreviation=abbreviation or title_, example=dict(example or {}),
        module=build.__module__, uses_layer_order=uses_layer_order, summary=summary,
        configs=tuple(configs), uses_run_length=uses_run_length)
    for field_name, field in fields.items():
      _FIELDS.setdefault(field_name, field)
    return build
  return decorate


def declaration(method: str) -> MethodDeclaration:
  """The declaration of ``method``: a registered name, or ``'module:name'`` (imports module).

  Raises:
    UserError: the module cannot be imported or the name is not registered.
  """
  if ":" in method:
    module, name = method.split(":", 1)
    import_method_module(module, method)
  else:
    name = method
  if name not in _DECLARATIONS:
    raise invalid_field("sparsify.method", method, f"use one of {', '.join(method_names())}, or "
                        "'module:name' for a method registered in your own module")
  return _DECLARATIONS[name]


def import_method_module(module: str, method: str | None = None) -> None:
  """Imports the module that registers a method (a one-line error if it cannot, or if the
  module itself fails while it is imported)."""
  try:
    importlib.import_module(module)
  except ImportError as error:
    raise UserError(
        f"config.sparsify.method={method or module!r} needs module {module!r}, which cannot be "
        f"imported ({error}); put its directory on PYTHONPATH") from error
  except Exception as error:  # the user's module raised while it ran
    raise UserError(
        f"config.sparsify.method={method or module!r}: importing module {module!r} raised "
        f"{errors.summary(error)}{errors.raised_at(error)}; fix the module") from error


#: Modules a user allowed to be imported when a run names them (see :func:`allowing_modules`).
_ALLOWED_MODULES: list[frozenset[str]] = []


@contextlib.contextmanager
def allowing_modules(modules: Iterable[str]) -> Iterator[None]:
  """Inside the block, runs (and zoos) on disk that name one of ``modules`` as their method's
  module may import it (the command lines' ``--allow_method_module``; the loaders take
  ``allow_modules`` for the same consent)."""
  _ALLOWED_MODULES.append(frozenset(modules))
  try:
    yield
  finally:
    _ALLOWED_MODULES.pop()


def import_recorded_module(module: str, method: str, where: str,
                           allow_modules: Iterable[str] = (),
                           run_dir: str | None = None) -> None:
  """Makes the method ``method`` that a run's files (``where``) record as coming from
  ``module`` available, importing code only with the user's consent.

  Loading a run is reading data: a run directory can be downloaded or shared,
  and its ``metadata.json`` can name any module. So a module is imported here
  only if the user allowed it (``allow_modules``, or :func:`allowing_modules`
  around the call); a module that is already imported (the built-in methods,
  or one the user's own config or code imported) needs no consent. The import
  never looks in ``run_dir`` (nor below it), even when the current directory
  or ``sys.path`` is there.

  Raises:
    UserError: the module is not allowed, cannot be imported or fails on import.
  """
  if not isinstance(module, str) or not module or not all(
      part.isidentifier() for part in module.split(".")):
    raise UserError(f"{where} names the method module {module!r}, which is not a module name; "
                    "the file was edited or damaged: restore it from a backup")
  if module in sys.modules:
    return
  allowed = set(allow_modules).union(*_ALLOWED_MODULES)
  if module not in allowed:
    raise UserError(
        f"{where} needs method {method!r} from module {module!r}, which is not imported; "
        "loading a run never imports code it names unless you allow it: if you trust that "
        f"module, pass allow_modules=({module!r},) to the loader or "
        f"--allow_method_module={module} to the command, or import it yourself first")
  with _path_without(run_dir):
    import_method_module(module, method)


@contextlib.contextmanager
def _path_without(directory: str | None) -> Iterator[None]:
  """``sys.path`` without the entries at or below ``directory`` (the current directory
  counts for the empty entry) for the block."""
  if directory is None:
    yield
    return
  root = os.path.realpath(directory)

  def inside(entry: str) -> bool:
    path = os.path.realpath(entry or os.getcwd())
    return path == root or path.startswith(root + os.sep)
  saved = list(sys.path)
  sys.path[:] = [entry for entry in saved if not inside(entry)]
  try:
    yield
  finally:
    sys.path[:] = saved


def method_names() -> tuple[str, ...]:
  """Names of the registered methods."""
  return tuple(_DECLARATIONS)


def declarations() -> tuple[MethodDeclaration, ...]:
  """Every registered method's declaration, in registration order."""
  return tuple(_DECLARATIONS.values())


def config_fields() -> dict[str, Field]:
  """Every ``config.sparsify`` field some registered method reads."""
  return dict(_FIELDS)


def member_settings(method: str) -> tuple[str, ...]:
  """The ``config.sparsify`` settings that ``method`` accepts per member."""
  return declaration(method).member_settings


def sweepable_settings() -> tuple[str, ...]:
  """Every setting some registered method accepts per member (the method grid's fields)."""
  names = []
  for spec in _DECLARATIONS.values():
    names += [name for name in spec.member_settings if name not in names]
  return tuple(names)


def twin_levels() -> dict[str, TwinLevel]:
  """The ``config.twins`` fields that list levels, each with the level it describes."""
  return {spec.twin_level.levels_field: spec.twin_level for spec in _DECLARATIONS.values()
          if spec.twin_level is not None}


class Settings(Mapping):
  """A frozen copy of ``config.sparsify``: what a builder reads (``settings.x`` or ``settings['x']``).

  Changing the config after a method is built cannot change the method (the
  builder's closures run while JAX traces, possibly much later).
  """

  def __init__(self, values: Mapping[str, Any]):
    object.__setattr__(self, "_values", dict(values))

  def __getitem__(self, name: str) -> Any:
    return self._values[name]

  def __getattr__(self, name: str) -> Any:
    try:
      return self._values[name]
    except KeyError:
      raise AttributeError(f"config.sparsify has no field {name!r}") from None

  def __setattr__(self, name, value):
    raise AttributeError("method settings are frozen; change the config and build again")

  def __iter__(self) -> Iterator[str]:
    return iter(self._values)

  def __len__(self) -> int:
    return len(self._values)


def get_method(settings: Mapping[str, Any], training: TrainingSchedule) -> SparsifyMethod:
  """Builds the method named ``settings['method']`` from ``config.sparsify`` settings.

  Fields the settings lack (a run made before the field existed, or a
  method whose module was imported after the config was made) take their
  declared defaults.
  """
  spec = declaration(settings["method"])
  values = {name: field.default for name, field in spec.fields.items()}
  values.update(settings.to_dict() if hasattr(settings, "to_dict") else settings)
  return spec.build(Settings(values), training)

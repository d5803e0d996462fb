"""The docs' generated parts: every config field (docs/configuration.md) and every method
(README.md), from the declarations, so that they cannot go stale.

``python -m jaxsparse.reference`` rewrites the parts between the markers
``<!-- generated: NAME -->`` and ``<!-- end generated: NAME -->`` of those
files; ``tests/test_reference.py`` fails when a file differs from what this
module generates.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from jaxsparse import config as config_lib
from jaxsparse import sparsify
from jaxsparse.schema import Field

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _escaped(text: str) -> str:
  """``text`` for a Markdown table cell."""
  return text.replace("|", "\\|")


def _cell(value: Any) -> str:
  return "`" + _escaped(repr(tuple(value) if isinstance(value, list) else value)) + "`"


def _rows(fields: dict[str, Any], prefix: str, readers: dict[str, list[str]]) -> list[str]:
  rows = []
  for name, field in fields.items():
    if isinstance(field, Field):
      read_by = (f" (read by {', '.join(readers[name])})" if prefix == "sparsify." and
                 name in readers else "")
      rows.append(f"| `{prefix}{name}` | {_cell(field.default)} | {_escaped(field.doc)}"
                  f"{read_by} |")
  return rows


def _sections(fields: dict[str, Any], prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
  """(section name, its fields) for every group of the schema, depth first."""
  sections = [(prefix.rstrip(".") or "(top level)", fields)]
  for name, field in fields.items():
    if isinstance(field, dict):
      sections += _sections(field, f"{prefix}{name}.")
  return sections


def config_reference() -> str:
  """Markdown: one table per section of the config (field, default, what it is); the
  ``sparsify`` fields name the methods that read them."""
  readers: dict[str, list[str]] = {}
  for spec in sparsify.declarations():
    for name in spec.fields:
      readers.setdefault(name, []).append(spec.name)
  lines = []
  for section, fields in _sections(config_lib.schema()):
    rows = _rows(fields, "" if section == "(top level)" else section + ".", readers)
    if rows:
      lines += [f"### `{section}`" if section != "(top level)" else "### top level", "",
                "| field | default | what it is |", "| --- | --- | --- |", *rows, ""]
  return "\n".join(lines).rstrip()


def methods_table() -> str:
  """Markdown: one row per registered method (name, what it does, its configs)."""
  lines = ["| method (`config.sparsify.method`) | what it does | config |", "| --- | --- | --- |"]
  for spec in sparsify.declarations():
    configs = ", ".join(f"`{path}`" for path in spec.configs) or "(a twins-study variant)"
    lines.append(f"| `{spec.name}` | {_escaped(spec.summary)} | {configs} |")
  return "\n".join(lines)


#: The generated parts: file -> {name: generator}.
GENERATED = {os.path.join("docs", "configuration.md"): {"config fields": config_reference},
             "README.md": {"methods": methods_table}}


def _markers(name: str) -> tuple[str, str]:
  return f"<!-- generated: {name} -->", f"<!-- end generated: {name} -->"


def generated_text(text: str, name: str, content: str) -> str:
  """``text`` with the part between ``name``'s markers replaced by ``content``."""
  begin, end = _markers(name)
  start, stop = text.index(begin) + len(begin), text.index(end)
  return text[:start] + "\n" + content + "\n" + text[stop:]


def stale_files() -> list[str]:
  """The files whose generated parts differ from what the declarations give now."""
  stale = []
  for path, parts in GENERATED.items():
    with open(os.path.join(REPOSITORY, path)) as file:
      text = file.read()
    if any(generated_text(text, name, generate()) != text for name, generate in parts.items()):
      stale.append(path)
  return stale


def main() -> int:
  """Rewrites the generated parts of the docs; prints which files changed."""
  for path, parts in GENERATED.items():
    full = os.path.join(REPOSITORY, path)
    with open(full) as file:
      text = file.read()
    updated = text
    for name, generate in parts.items():
      updated = generated_text(updated, name, generate())
    if updated != text:
      with open(full, "w") as file:
        file.write(updated)
      print(f"rewrote {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())

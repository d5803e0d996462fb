"""The package's modules import each other without a cycle (docs/design.md: lower modules
never import higher ones), counting imports inside functions too."""

import ast
import os

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "jaxsparse")


def _module_name(path: str) -> str:
  relative = os.path.relpath(path, os.path.dirname(PACKAGE))[:-len(".py")]
  parts = relative.split(os.sep)
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
  """Whether ``name`` is a module of the package (a file or a package directory)."""
  path = os.path.join(os.path.dirname(PACKAGE), *name.split("."))
  return os.path.isfile(path + ".py") or os.path.isfile(os.path.join(path, "__init__.py"))


def import_graph() -> dict[str, set[str]]:
  """Module -> the jaxsparse modules it imports (anywhere in its file)."""
  graph = {}
  for root, _, names in os.walk(PACKAGE):
    for name in names:
      if not name.endswith(".py"):
        continue
      path = os.path.join(root, name)
      module = _module_name(path)
      targets = set()
      for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
          targets |= {alias.name for alias in node.names if alias.name.startswith("jaxsparse")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jaxsparse"):
          for alias in node.names:
            child = f"{node.module}.{alias.name}"
            targets.add(child if _is_module(child) else node.module)
      graph[module] = targets - {module}
  return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """One import cycle of ``graph`` (the modules along it), or None."""
  state, stack = {}, []

  def visit(module):
    state[module] = "open"
    stack.append(module)
    for target in sorted(graph.get(module, ())):
      # A package's __init__ importing its own submodules (registering them) is not an
      # arrow back up: the submodule is the lower one.
      if module == target.rsplit(".", 1)[0] and target.startswith(module + "."):
        continue
      if state.get(target) == "open":
        return stack[stack.index(target):] + [target]
      if target not in state:
        found = visit(target)
        if found:
          return found
    state[module] = "done"
    stack.pop()
    return None

  for module in sorted(graph):
    if module not in state:
      found = visit(module)
      if found:
        return found
  return None


def test_the_import_graph_has_no_cycle():
  graph = import_graph()
  assert "jaxsparse.figures" in graph and "jaxsparse.report" in graph
  assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_check_finds_a_cycle():
  assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
  assert _cycle({"a": {"b"}, "b": set()}) is None

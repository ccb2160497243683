"""The agents import one way: the app imports the stage agents, never the reverse.

Read from the source (function-level imports included, which is where the app imports the
stage agents), so a cycle shows here even when Python would tolerate it at run time.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pipeline.agents

AGENTS = Path(pipeline.agents.__file__).parent
PACKAGE = "pipeline.agents"


def agent_imports(path: Path) -> set[str]:
    """The ``pipeline.agents`` modules a module imports, anywhere in its body."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == PACKAGE:
            found.update(f"{PACKAGE}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(f"{PACKAGE}."):
            found.add(str(node.module))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith(PACKAGE))
    return found


def import_graph() -> dict[str, set[str]]:
    return {f"{PACKAGE}.{path.stem}": agent_imports(path)
            for path in sorted(AGENTS.glob("*.py")) if path.stem != "__init__"}


def test_the_agents_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as error:
        raise AssertionError(f"import cycle among the agents: {error.args[1]}") from None


def test_no_stage_agent_imports_the_app() -> None:
    importers = {module for module, imports in import_graph().items()
                 if f"{PACKAGE}.app" in imports}
    assert importers == {f"{PACKAGE}.worker"}

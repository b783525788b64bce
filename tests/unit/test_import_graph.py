"""The modules import each other without a circle, also counting imports inside functions (a
lazy import used to dodge a circle is still a circle): the engine's parts stay separable, and
what plugs into the engine (the RQ runner, the Label Studio link) does so from outside."""
import ast
from pathlib import Path
from typing import Dict, List, Set

ROOT = Path(__file__).resolve().parents[2]


def _graph() -> Dict[str, Set[str]]:
    files = {f"baal_backend.{p.stem}": p for p in (ROOT / "baal_backend").glob("*.py")}
    files.update({"label_studio_baal_hf": ROOT / "label_studio_baal_hf.py", "_wsgi": ROOT / "_wsgi.py"})
    graph: Dict[str, Set[str]] = {name: set() for name in files}
    for name, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                package = "baal_backend" if node.level else node.module
                module = f"baal_backend.{node.module}" if node.level and node.module else node.module
                targets = [f"{package}.{alias.name}" for alias in node.names] + [module or ""]
            else:
                continue
            graph[name] |= {t for t in targets if t in files and t != name}
    return graph


def _cycle(graph: Dict[str, Set[str]]) -> List[str]:
    """One import circle (its modules, the first one again at the end), or [] when none."""
    done: Set[str] = set()

    def visit(node: str, path: List[str]) -> List[str]:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return []
        for nxt in sorted(graph[node]):
            found = visit(nxt, path + [node])
            if found:
                return found
        done.add(node)
        return []

    for start in sorted(graph):
        found = visit(start, [])
        if found:
            return found
    return []


def test_no_module_imports_itself_through_others():
    graph = _graph()
    assert "baal_backend.engine" in graph and graph["baal_backend.engine"]
    assert _cycle(graph) == []


def test_the_cycle_finder_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) == []

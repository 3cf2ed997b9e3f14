"""The shape of core/: no import cycle, dependencies in one direction only, no gradio.

Every import is counted, at module level and inside functions, so a cycle
can't hide behind a lazy import. A package may re-export its own modules
(its front door); that is not a cycle.
"""
from __future__ import annotations

import ast
from pathlib import Path

from tests.paths import ROOT

CORE = ROOT / "core"
# The order of the flow: each layer may import only itself and the layers before it.
LAYERS = ["core", "core.data", "core.plan", "core.infer", "core.train"]


def _modules() -> dict[str, Path]:
    found = {}
    for path in CORE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The core modules `name` imports (a `from pkg import mod` counts as pkg.mod)."""
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name if path.name == "__init__.py" else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = ".".join(p for p in (package, node.module or "") if p)
            candidates = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in modules:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                targets.add(candidate)
                break
    return targets


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    # a package importing its own modules (its front door) and a module importing its package are not cycles
    return {name: {t for t in deps if not t.startswith(name + ".") and not name.startswith(t + ".")}
            for name, deps in graph.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as a path of module names, or [] when there is none."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        stack.pop()
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def _layer(name: str) -> int:
    return max(i for i, prefix in enumerate(LAYERS) if name == prefix or name.startswith(prefix + "."))


def test_no_import_cycle_in_core():
    cycle = _cycle(_graph())
    assert not cycle, " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) == []


def test_dependencies_point_one_way():
    backwards = sorted(f"{name} -> {dep}" for name, deps in _graph().items() for dep in deps
                       if _layer(dep) > _layer(name))
    assert not backwards, backwards


def test_every_package_says_what_it_is_for():
    for init in CORE.rglob("__init__.py"):
        if init.parent.name == "catalog":
            continue
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and len(doc) > 80, f"{init.relative_to(ROOT)} needs a docstring saying what the package is for"


def test_core_never_imports_gradio():
    offenders = [str(p.relative_to(ROOT)) for p in CORE.rglob("*.py")
                 if any(isinstance(n, (ast.Import, ast.ImportFrom)) and "gradio" in ast.unparse(n)
                        for n in ast.walk(ast.parse(p.read_text(encoding="utf-8"))))]
    assert not offenders, offenders


def test_the_readme_map_lists_every_package():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    packages = sorted(str(p.parent.relative_to(ROOT)) for p in CORE.rglob("__init__.py"))
    missing = [p for p in packages if f"`{p}/`" not in readme]
    assert not missing, f"README's 'How it fits together' should list {missing}"

"""The shape of the package: no import cycles (module-level or inside functions), small functions and modules."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "unispeech"
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 500


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """Every unispeech module `path` imports, wherever the import statement is (functions included)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # `from . import x` imports module x
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    # Importing a.b runs a/__init__.py first: a package's own imports count for its submodules' importers.
    return {module_name(p): imported_modules(p, modules) for p in paths}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, set())):
            if nxt == "unispeech":  # every module's package: importing it is not a dependency on its contents
                continue
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle_through_a_function_local_import(tmp_path):
    graph = {"unispeech.a": {"unispeech.b"}, "unispeech.b": {"unispeech.c"}, "unispeech.c": {"unispeech.a"}}
    assert find_cycle(graph) == ["unispeech.a", "unispeech.b", "unispeech.c", "unispeech.a"]
    source = tmp_path / "unispeech" / "x.py"
    source.parent.mkdir()
    source.write_text("def f():\n    from .y import z\n", encoding="utf-8")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "unispeech"
    try:
        assert imported_modules(source, {"unispeech.x", "unispeech.y"}) == {"unispeech.y"}
    finally:
        PACKAGE = saved


def test_no_import_cycle_inside_the_package():
    graph = import_graph()
    assert len(graph) > 20
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_no_function_over_the_line_cap():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def test_no_module_over_the_line_cap():
    sizes = {
        p.relative_to(PACKAGE.parent): len(p.read_text(encoding="utf-8").splitlines()) for p in PACKAGE.rglob("*.py")
    }
    assert not {p: n for p, n in sizes.items() if n > MAX_MODULE_LINES}

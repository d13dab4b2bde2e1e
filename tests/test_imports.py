"""The import style of server/: relative imports of its own modules, and no module that imports itself back,
directly or through others (lazy imports inside functions count too)."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: pathlib.Path, package: str, known: set[str]) -> set[str]:
    """Every module of `known` that `path` imports, at any depth of the file (lazy imports count too)."""
    name = module_name(path)
    here = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [prefix] + [f"{prefix}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and t.split(".")[0] == package:
                found.add(t)
    return found


def cycles(package: str) -> list[list[str]]:
    files = sorted((ROOT / package).rglob("*.py"))
    known = {module_name(f) for f in files}
    graph = {module_name(f): imports_of(f, package, known) for f in files}
    # A package's __init__ re-exporting its own modules is not a cycle of the design: leave those edges out.
    graph = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in graph.items()}
    found, state = [], {}

    def visit(m, stack):
        state[m] = "open"
        for t in sorted(graph.get(m, ())):
            if state.get(t) == "open":
                found.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t, stack + [t])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    return found


def test_no_import_cycles_in_server():
    assert cycles("server") == []


def test_server_imports_its_own_modules_relatively():
    absolute = []
    for path in sorted((ROOT / "server").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            absolute += [f"{path.relative_to(ROOT)}:{node.lineno}" for n in names
                         if n == "server" or n.startswith("server.")]
    assert absolute == []

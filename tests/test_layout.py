"""The layout rules of ARCHITECTURE.md, checked on the source: no import cycle, models/ holds
nn.Modules only (no tasks, no files), cli modules do not import each other (except the shared
decoding arguments), one place checks a checkpoint's task, and no file grows past 400 lines."""
import ast
import re
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "captionkit"


def modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every captionkit module ``name`` imports, at any depth of the file (lazy imports included)."""
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                mod = ".".join(base[:len(base) - node.level + 1] + ([mod] if mod else []))
            for alias in node.names:
                full = f"{mod}.{alias.name}"
                found.add(full if full in known else mod)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m in known and m != name}


def graph():
    mods = modules()
    return {n: imports(n, p, set(mods)) for n, p in mods.items()}


def test_no_import_cycle():
    g = graph()
    state, stack = {}, []

    def visit(n):
        state[n] = "open"
        stack.append(n)
        for m in g[n]:
            if m.startswith(n + "."):
                continue  # a package importing its own submodule is not a cycle
            if state.get(m) == "open" and not n.startswith(m + "."):
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(m):] + [m]))
            if m not in state:
                visit(m)
        stack.pop()
        state[n] = "done"

    for n in sorted(g):
        if n not in state:
            visit(n)


def test_models_are_modules_only():
    for name, deps in graph().items():
        if name.startswith("captionkit.models."):
            assert not [d for d in deps if d.startswith(("captionkit.tasks", "captionkit.features",
                                                         "captionkit.checkpoint", "captionkit.cli"))], name
            text = modules()[name].read_text()
            assert not re.search(r"\bopen\(|torch\.load|torch\.save|\.read_text|\.write_text", text), name


def test_cli_modules_do_not_import_each_other():
    for name, deps in graph().items():
        if name.startswith("captionkit.cli.") and name != "captionkit.cli.decode_args":
            others = [d for d in deps if d.startswith("captionkit.cli") and d != "captionkit.cli.decode_args"]
            assert not others, f"{name} imports {others}"


def test_one_place_checks_a_checkpoint_task():
    pattern = re.compile(r"""\[["']task["']\]\s*[!=]=|\.get\(["']task["']\)\s*[!=]=|\.get\(["']task["']\)\s*not in""")
    offenders = [str(p.relative_to(PKG)) for p in PKG.rglob("*.py")
                 if pattern.search(p.read_text()) and p.name != "loading.py"]
    assert offenders == []


def test_no_file_over_400_lines():
    long = {str(p.relative_to(PKG)): n for p in PKG.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}

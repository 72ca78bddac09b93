"""The package's layout, read from the modules' own source: imports go only downward, no
cycles, functions short enough to read at once, comments without the project's history.

Checked with `ast` on the files, never by importing them, so a lazy import inside a function
counts as much as one at the top.
"""

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "hifill_tf"

# Layers from the bottom. A module may import modules of its own layer or of lower ones, never
# of a higher one; a module's layer is that of its longest matching prefix.
LAYERS = [
    ["hifill_tf.lazy", "hifill_tf.version", "hifill_tf.console", "hifill_tf.imports", "hifill_tf.flags",
     "hifill_tf.io", "hifill_tf.data.files", "hifill_tf.training.config",
     "hifill_tf.export.output_dir"],
    ["hifill_tf.layers", "hifill_tf.data.masks", "hifill_tf.data.photos",
     "hifill_tf.data.containers"],
    ["hifill_tf.models"],
    ["hifill_tf.cra", "hifill_tf.weights", "hifill_tf.training.losses",
     "hifill_tf.training.optimizers", "hifill_tf.training.cpu"],
    ["hifill_tf.api", "hifill_tf.data.pipeline", "hifill_tf.data.numpy_feed",
     "hifill_tf.data", "hifill_tf.training.state", "hifill_tf.training.checkpoints",
     "hifill_tf.training.gan",
     "hifill_tf.export.saved_model", "hifill_tf.export", "hifill_tf.evaluate.metrics",
     "hifill_tf.evaluate.baselines", "hifill_tf.evaluate.report"],
    ["hifill_tf.loading", "hifill_tf.batch"],
    ["hifill_tf.training.validation", "hifill_tf.training.curves", "hifill_tf.evaluate",
     "hifill_tf.beam", "hifill_tf.app"],
    ["hifill_tf.training"],
    ["hifill_tf"],
]
MAX_FUNCTION_LINES = 80
HISTORY = re.compile(
    r"\b(earlier|previous|last|this|in an?) session\b|\bsession \d+\b|\bcommit [0-9a-f]{6,}\b"
    r"|\bissue \d+\b|\b(was|were) once\b|\bused to be\b|\bpreviously\b"
    r"|\bnow (is|are|runs|uses)\b|\bbefore this change\b", re.IGNORECASE)


def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules():
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _is_package(name):
    return MODULES[name].name == "__init__.py"


def _imports(name):
    """Every hifill_tf module `name` imports, from all import statements, resolved to modules."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(), str(path))
    package = name if _is_package(name) else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import mod` imports the module pkg.mod where one exists.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


IMPORTS = {name: _imports(name) for name in MODULES}


def _layer(name):
    best, rank = "", None
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > len(best):
                best, rank = prefix, i
    return rank


def test_every_module_has_a_layer():
    missing = [n for n in MODULES if _layer(n) is None]
    assert not missing, missing


def test_imports_go_only_downward():
    upward = [f"{n} (layer {_layer(n)}) imports {m} (layer {_layer(m)})"
              for n, targets in IMPORTS.items() for m in sorted(targets)
              if _layer(m) is not None and _layer(n) is not None and _layer(m) > _layer(n)]
    assert not upward, "\n".join(upward)


def test_no_module_imports_its_own_ancestor_package():
    # A package's __init__ imports its children, so a child importing its parent is a cycle
    # in disguise; `python -m pkg` runs pkg/__main__.py after pkg/__init__.py and is exempt.
    bad = [f"{n} imports {m}" for n, targets in IMPORTS.items() for m in sorted(targets)
           if n.startswith(m + ".") and not n.endswith(".__main__")]
    assert not bad, "\n".join(bad)


def test_no_import_cycle():
    graph = {n: {m for m in IMPORTS[n] if not n.startswith(m + ".")} for n in MODULES}
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert not cycles, "\n".join(cycles)


def test_the_layout_check_sees_a_cycle_and_an_upward_import():
    # The checks above would pass on an empty import table; this one proves the table is read.
    assert "hifill_tf.layers.gated_conv" in IMPORTS["hifill_tf.models.generator"]
    assert _layer("hifill_tf.models.generator") > _layer("hifill_tf.layers.gated_conv")
    assert _layer("hifill_tf.app.rest") > _layer("hifill_tf.cra")


def _functions(path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def test_no_function_is_longer_than_80_lines():
    long = [f"{p.relative_to(ROOT)}:{f.lineno} {f.name} ({f.end_lineno - f.lineno + 1} lines)"
            for p in MODULES.values() for f in _functions(p)
            if f.end_lineno - f.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, "\n".join(long)


def _history_files():
    yield from MODULES.values()
    for folder in ("tests", "bench", "tools"):
        yield from sorted((ROOT / folder).glob("*.py"))
    yield from sorted(ROOT.glob("*.py"))


def _comments_and_docstrings(path):
    source = path.read_text()
    for lineno, line in enumerate(source.splitlines(), 1):
        if "#" in line:
            yield lineno, line[line.index("#"):]
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield getattr(node, "lineno", 1), doc


def test_no_comment_tells_the_projects_history():
    found = [f"{p.relative_to(ROOT)}:{n}: {HISTORY.search(text).group(0)!r}"
             for p in _history_files() if p.name != "test_layout.py"
             for n, text in _comments_and_docstrings(p) if HISTORY.search(text)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("text", ["An earlier session saw this", "commit 587d554 turned it off",
                                  "before issue 9", "measured in session 5",
                                  "the browser tests were once last"])
def test_the_history_pattern_catches_the_known_cases(text):
    assert HISTORY.search(text)

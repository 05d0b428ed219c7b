"""The package's shape, checked from its source with the standard library (no import runs):
no import cycle, no module over 500 lines, third-party internals only in sanyu/adapters/, and
imports inside functions only where they defer a heavy or optional library."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "sanyu"
MAX_LINES = 500

# Imports left inside functions, each deferring something heavy or optional. A new one must be
# added here with its reason (or moved to the top of its module).
LAZY_IMPORTS = {
    ("sanyu/api.py", "sanyu.transcribe.engine"): "CTranslate2: only when a model is first used",
    ("sanyu/api.py", "sanyu.diarize.pipeline"): "torch and pyannote.audio: only when diarizing",
    ("sanyu/models/__init__.py", "faster_whisper.utils"): "CTranslate2, for an unknown model name only",
    ("sanyu/cli/batch.py", "sanyu.pipeline.driver"): "Ray and Ray Data (the batch extra)",
    ("sanyu/cli/batch.py", "sanyu.pipeline.progress"): "Ray (the batch extra)",
    ("sanyu/cli/serve.py", "sanyu.serve"): "Ray Serve and FastAPI (the serve extra)",
    ("sanyu/cli/serve.py", "sanyu.serve.server"): "Ray Serve (the serve extra)",
    ("sanyu/cli/evaluate.py", "sanyu.evaluation.report"): "jiwer, pyannote.metrics (the eval extra)",
    ("sanyu/cli/evaluate.py", "sanyu.evaluation.runner"): "jiwer, pyannote.metrics (the eval extra)",
    ("sanyu/cli/evaluate.py", "sanyu.evaluation.twofold"): "jiwer, scikit-learn (the eval extra)",
    ("sanyu/transcribe/dialect.py", "sklearn.linear_model"): "scikit-learn: to train a probe only",
    ("sanyu/adapters/faster_whisper.py", "torch"): "torch: only to hold encoder output on a GPU",
    ("sanyu/output/minutes.py", "docx"): "python-docx and lxml (~0.1 s): only when writing a DOCX",
    ("sanyu/output/minutes.py", "docx.oxml.ns"): "python-docx and lxml: only when writing a DOCX",
    ("sanyu/pieces.py", "faster_whisper.vad"): "CTranslate2 and onnxruntime: only to cut a long "
                                               "recording (the server's ingress rarely does)",
    ("sanyu/options.py", "sanyu.adapters.faster_whisper"): "faster-whisper and CTranslate2: only to "
                                                          "check a language a user names",
}
# Private third-party modules or names used only behind an adapter.
ADAPTERS = "sanyu/adapters/"


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imports(path: Path):
    """(imported module, names, inside a function, node) for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}

    def in_function(node) -> bool:
        while node in parents:
            node = parents[node]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return True
        return False

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, (), in_function(node), node
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, tuple(a.name for a in node.names), in_function(node), node


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for module, names, _, _ in _imports(path):
            if module.split(".")[0] != "sanyu":
                continue
            targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in modules] or [module]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_in_the_package():
    """Imports inside functions count too: they only hide a cycle."""
    graph = _graph()
    assert len(graph) > 40 and graph["sanyu.storage"] >= {"sanyu.location", "sanyu.output"}
    assert _cycles(graph) == []


def test_no_module_over_500_lines():
    long = {str(p.relative_to(REPO)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_third_party_internals_only_in_adapters():
    found = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(REPO).as_posix()
        if relative.startswith(ADAPTERS):
            continue
        for module, names, _, node in _imports(path):
            if module.split(".")[0] in ("sanyu", *sys.stdlib_module_names):
                continue
            private = [part for part in module.split(".") if part.startswith("_")]
            private += [name for name in names if name.startswith("_")]
            if private:
                found.append(f"{relative}:{node.lineno} {module} {private}")
    assert found == []


def test_imports_inside_functions_only_defer_heavy_libraries():
    lazy = {}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(REPO).as_posix()
        for module, _, inside, node in _imports(path):
            if inside:
                lazy[(relative, module)] = node.lineno
    assert set(lazy) == set(LAZY_IMPORTS), "say why an import stays inside a function (LAZY_IMPORTS)"

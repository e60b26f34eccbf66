"""Architecture rules that import-linter does not check (it runs in .ci/run before the tests):

* no module imports another module's private names (``from m import _x`` or ``m._x``);
* no file in the product packages over 450 lines, no function over 80 lines (60 in the command
  lines of ``pipelines``, which only parse, call a job and map its errors).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("srkeras", "db", "jobs", "pipelines", "mos_app", "benchmarks")
SIZED = ("srkeras", "db", "jobs", "pipelines", "mos_app")  # the size limits apply here
MAX_FILE_LINES = 450
MAX_FUNCTION_LINES = 80
MAX_FUNCTION_LINES_IN = {"pipelines": 60}  # thin command lines


def _sources(packages):
    for pkg in packages:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_uses(path: Path, me: str | None = None) -> list[str]:
    """``from project.module import _name`` and ``module_alias._name`` where module is another one."""
    me = me or _module_name(path)
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    tree = ast.parse(path.read_text(), str(path))
    aliases, found = {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] not in PACKAGES or node.module == me:
                continue
            for a in node.names:
                if _is_private(a.name):
                    found.append(f"{where}:{node.lineno} imports {node.module}.{a.name}")
                else:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in PACKAGES and a.name != me:
                    aliases[a.asname or a.name.split(".")[0]] = a.asname and a.name or a.name.split(".")[0]
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and _is_private(node.attr)
        ):
            found.append(f"{where}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    return found


def test_no_module_imports_another_modules_private_names():
    found = [hit for path in _sources(PACKAGES) for hit in _private_uses(path)]
    assert not found, "private names used across modules:\n" + "\n".join(found)


def test_the_checker_sees_a_private_import(tmp_path):
    bad = tmp_path / "probe.py"
    bad.write_text("from db.engine import _hidden\nimport db.engine as e\nx = e._other\nfrom db.engine import open_database\n")
    hits = _private_uses(bad, me="pipelines.probe")
    assert len(hits) == 2 and "_hidden" in hits[0] and "_other" in hits[1]


def _long_functions(path: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > limit:
                out.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} has {n} lines")
    return out


@pytest.mark.parametrize("pkg", SIZED)
def test_files_and_functions_are_short(pkg):
    long_files = [
        f"{p.relative_to(ROOT)} has {n} lines"
        for p in _sources([pkg])
        if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES
    ]
    limit = MAX_FUNCTION_LINES_IN.get(pkg, MAX_FUNCTION_LINES)
    long_funcs = [hit for p in _sources([pkg]) for hit in _long_functions(p, limit)]
    assert not long_files and not long_funcs, "\n".join(long_files + long_funcs)

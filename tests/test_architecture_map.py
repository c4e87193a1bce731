"""The map tells the truth: docs/ARCHITECTURE.md names every module of memrl, and pyproject's package-data
names only files that exist (and every data file shipped inside memrl/).

How a module counts as named: in the "Modules" table of docs/ARCHITECTURE.md, the first cell of a row holds
backticked paths relative to memrl/ (`eval/metrics.py`); a bare file name in the same cell after a path with a
folder is in that folder (`eval/metrics.py`, `report.py` names eval/report.py). A package's `__init__.py` that
only re-exports (docstring, imports, assignments) needs no row; one that does work (registers environments,
defines the command) does.
"""

from __future__ import annotations

import ast
import glob
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "memrl"
ARCHITECTURE = REPO / "docs" / "ARCHITECTURE.md"


def _only_reexports(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    body = tree.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    return all(isinstance(node, (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign)) for node in body)


def modules_that_need_a_row() -> set[str]:
    out = set()
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if path.name == "__init__.py" and _only_reexports(path):
            continue
        out.add(rel)
    return out


def modules_named_in_the_map(text: str) -> set[str]:
    section = text.split("\n## Modules", 1)[1].split("\n## ", 1)[0]
    named = set()
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        folder = ""
        for token in re.findall(r"`([^`]+\.py)`", line.split("|")[1]):
            if "/" in token:
                folder = token.rsplit("/", 1)[0] + "/"
                named.add(token)
            else:
                named.add(folder + token)
    return named


def test_every_module_of_memrl_has_a_row_in_the_architecture_map():
    named = modules_named_in_the_map(ARCHITECTURE.read_text(encoding="utf-8"))
    missing = sorted(modules_that_need_a_row() - named)
    assert not missing, f"docs/ARCHITECTURE.md (## Modules) has no row for: {', '.join(missing)}"


def test_the_architecture_map_names_no_module_that_does_not_exist():
    named = modules_named_in_the_map(ARCHITECTURE.read_text(encoding="utf-8"))
    gone = sorted(m for m in named if not (PACKAGE / m).is_file())
    assert not gone, f"docs/ARCHITECTURE.md names modules that do not exist: {', '.join(gone)}"


def test_the_map_reader_understands_shared_rows():
    text = "# x\n\n## Modules\n\n| module | owns |\n|---|---|\n| `eval/metrics.py`, `report.py` | a |\n| `cli.py` | b |\n"
    assert modules_named_in_the_map(text) == {"eval/metrics.py", "eval/report.py", "cli.py"}


def test_package_data_names_only_files_that_exist():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    package_data = pyproject.get("tool", {}).get("setuptools", {}).get("package-data", {})
    for package, patterns in package_data.items():
        root = REPO / package.replace(".", "/")
        for pattern in patterns:
            assert glob.glob(str(root / pattern)), f"[tool.setuptools.package-data] {package}: {pattern!r} matches no file"


def test_every_data_file_inside_memrl_is_package_data():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject.get("tool", {}).get("setuptools", {}).get("package-data", {}).get("memrl", [])
    data_files = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*")
                  if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    unshipped = [f for f in data_files if not any(Path(f).match(pat) or f == pat for pat in patterns)]
    assert not unshipped, f"files inside memrl/ that an installed package would lack: {unshipped}"

"""The architecture contracts: tpt's layers and no import cycles (import-linter, pyproject.toml), and
function-level imports of tpt's own modules only where a comment says which heavy dependency waits."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 kept, 0 broken" in done.stdout, done.stdout  # both contracts ran


def late_tpt_imports(path: Path):
    """(line number, source line, the line before) of each import of a tpt module inside a function."""
    source = path.read_text()
    lines = source.splitlines()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for inner in ast.walk(node):
            names = []
            if isinstance(inner, ast.Import):
                names = [a.name for a in inner.names]
            elif isinstance(inner, ast.ImportFrom) and inner.level == 0 and inner.module:
                names = [inner.module]
            if any(n == "tpt" or n.startswith("tpt.") for n in names):
                yield inner.lineno, lines[inner.lineno - 1], lines[inner.lineno - 2]


def test_function_level_imports_of_tpt_modules_say_why():
    unexplained = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in sorted((ROOT / "tpt").rglob("*.py"))
        for n, line, before in late_tpt_imports(path)
        if "#" not in line and not before.strip().startswith("#")
    ]
    assert not unexplained, (
        "imports inside functions need a comment naming the heavy dependency they defer:\n" + "\n".join(unexplained)
    )


def test_the_import_checker_sees_function_level_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "def f():\n    from tpt.loop import run_cell\n\n\ndef g():\n    from tpt.models import device  # torch\n"
    )
    found = list(late_tpt_imports(module))
    assert [n for n, _, _ in found] == [2, 6]


def test_ruff_finds_nothing_to_lint_or_format():
    """ruff's lint rules and formatter (pyproject.toml, [tool.ruff]) hold for the whole tree."""
    ruff = Path(sys.executable).with_name("ruff")
    for args in (["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]):
        done = subprocess.run([str(ruff), *args], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, f"ruff {' '.join(args)}:\n{done.stdout}{done.stderr}"

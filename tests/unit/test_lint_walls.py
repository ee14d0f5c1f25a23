"""make lint fails when a type or an import contract breaks: mypy and import-linter, run under the
project's own configuration (pyproject.toml) on a few modules written here to break one rule each, with
a clean control beside them so that a failure means the rule, not the setup. Nothing in the project's tree
is touched; each check takes seconds (mypy's first look at the standard library is most of it)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"


def _write(base: Path, module: str, text: str = "") -> None:
    """Writes module (dotted) under base as a file, with the __init__.py of every package above it."""
    parts = module.split(".")
    for i in range(1, len(parts)):
        init = base.joinpath(*parts[:i], "__init__.py")
        init.parent.mkdir(parents=True, exist_ok=True)
        init.touch()
    path = base.joinpath(*parts[:-1], parts[-1] + ".py")
    if not path.exists() or text:
        path.write_text(text)


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_make_lint_runs_both_walls() -> None:
    """The checks below are the ones make lint runs: mypy (typecheck, a prerequisite) and lint-imports."""
    makefile = (ROOT / "Makefile").read_text()
    lint = re.search(r"^lint:(.*)\n((?:\t.*\n)+)", makefile, re.M)
    assert lint is not None
    assert "typecheck" in lint.group(1).split()
    assert "lint-imports" in lint.group(2)
    typecheck = re.search(r"^typecheck:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert typecheck is not None and re.search(r"/mypy\s*$", typecheck.group(1).strip())


# ---------------------------------------------------------------- types (mypy)

UNTYPED = "def total(amounts):\n    return sum(amounts)\n"
TYPE_ERROR = "def count() -> int:\n    return 'many'\n"


def test_mypy_is_strict_on_mesh_and_domain_modules_and_fails_on_a_type_error_elsewhere(tmp_path: Path) -> None:
    """Under pyproject's [tool.mypy]: an unannotated function fails in mesh and in a domain module (strict,
    at any depth), passes in a handler module (mypy's default level), where a wrong type still fails."""
    _write(tmp_path, "mesh.wall", UNTYPED)
    _write(tmp_path, "services.wall.domain", UNTYPED)
    _write(tmp_path, "services.wall.deeper.domain", UNTYPED)
    _write(tmp_path, "services.wall.handlers", UNTYPED + "\n\n" + TYPE_ERROR)
    _write(tmp_path, "services.wall.clean", UNTYPED)
    files = ["mesh/wall.py", "services/wall/domain.py", "services/wall/deeper/domain.py", "services/wall/handlers.py",
             "services/wall/clean.py"]
    done = _run([sys.executable, "-m", "mypy", "--config-file", str(PYPROJECT),
                 "--cache-dir", str(tmp_path / ".mypy_cache"), *files], tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    errors = {(m.group(1), m.group(2)) for m in re.finditer(r"^(\S+\.py):\d+: error: .*\[([a-z-]+)\]$", done.stdout,
                                                             re.M)}
    assert errors == {
        ("mesh/wall.py", "no-untyped-def"),
        ("services/wall/domain.py", "no-untyped-def"),
        ("services/wall/deeper/domain.py", "no-untyped-def"),
        ("services/wall/handlers.py", "return-value"),
    }, done.stdout


# ---------------------------------------------------------------- import contracts (import-linter)


def _contract_tree(base: Path) -> str:
    """A tree with every module pyproject's contracts name (empty, importing nothing), and an import
    for each of their ignore_imports patterns (an unmatched one is an error); returns the config."""
    text = PYPROJECT.read_text()
    config = tomllib.loads(text)["tool"]["importlinter"]
    roots = set(config["root_packages"])
    for root in roots:
        _write(base, f"{root}.__init__")
    for contract in config["contracts"]:
        for key in ("source_modules", "forbidden_modules", "modules"):
            for name in contract.get(key, []):
                if "*" not in name and name.split(".")[0] in roots:
                    _write(base, f"{name}.__init__")
        for ignored in contract.get("ignore_imports", []):
            importer, imported = (side.strip().replace("*", "wall") for side in ignored.split("->"))
            _write(base, imported)
            _write(base, importer, f"import {imported}\n")
    return text


def _lint_imports(base: Path) -> subprocess.CompletedProcess[str]:
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert command is not None, "import-linter is a dev dependency (make install)"
    return _run([command, "--no-cache"], base)


def test_import_linter_fails_on_a_forbidden_import(tmp_path: Path) -> None:
    """Under pyproject's [tool.importlinter]: the tree passes, then a domain module importing the database
    layer and a service importing another each break their contract, and lint-imports fails."""
    (tmp_path / "pyproject.toml").write_text(_contract_tree(tmp_path))
    _write(tmp_path, "mesh.errors")
    _write(tmp_path, "services.orders.domain", "from mesh import errors\n")  # a domain module may raise them
    clean = _lint_imports(tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr

    _write(tmp_path, "services.wall.domain", "import mesh.db\n")
    _write(tmp_path, "services.orders.handlers", "import services.crm\n")
    broken = _lint_imports(tmp_path)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    out = re.sub(r"\s+", " ", broken.stdout)
    assert re.search(r"Contracts: \d+ kept, 2 broken\.", out), broken.stdout
    assert "services.wall.domain -> mesh.db" in out
    assert "services.orders.handlers -> services.crm" in out

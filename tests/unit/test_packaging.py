"""What an install of seamline ships: every module imports without the test extra, a module that needs an optional
extra fails with the command that installs it, and every data file the package reads is declared as package data."""

from __future__ import annotations

import fnmatch
import importlib
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "seamline"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

# Import names that only the optional extras bring: the test extra's tools, and each runtime extra's packages.
TEST_ONLY = ("pytest", "_pytest", "pytest_asyncio", "pytest_timeout", "websockets", "mypy", "ruff")
EXTRAS = {"grafana_foundation_sdk": "dashboards"}
# Package -> the extra it needs.
OPTIONAL = {"seamline.dashboards": "dashboards"}

IMPORT_ALL = """
import importlib, json, sys
out = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
        out[name] = None
    except Exception as e:
        out[name] = f"{type(e).__name__}: {e}"
print(json.dumps(out))
"""


def shipped_modules() -> list[str]:
    """Every module under src/seamline, by dotted name (from the files, so listing them imports nothing)."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def needs_extra(module: str) -> str | None:
    return next((extra for pkg, extra in OPTIONAL.items() if module == pkg or module.startswith(pkg + ".")), None)


@pytest.fixture
def without_extras(tmp_path: Path) -> dict[str, str]:
    """The environment of an interpreter where the extras are not installed: importing one fails as if absent."""
    site = tmp_path / "site"
    site.mkdir()
    blocked = [*TEST_ONLY, *EXTRAS]
    # sitecustomize runs before any user code, so even `python -m` sees the packages as missing.
    (site / "sitecustomize.py").write_text(f"import sys\nsys.modules.update(dict.fromkeys({blocked!r}))\n")
    path = os.pathsep.join(p for p in (str(site), str(PACKAGE.parent), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path}


def test_every_shipped_module_imports():
    for name in shipped_modules():
        importlib.import_module(name)


def test_without_the_extras_every_module_imports_or_names_its_extra(without_extras):
    r = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, "pytest", "grafana_foundation_sdk", *shipped_modules()],
        env=without_extras,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    results = json.loads(r.stdout)
    # The environment really lacks them (else this test proves nothing).
    assert results.pop("pytest", None) and results.pop("grafana_foundation_sdk", None)
    for name, error in results.items():
        extra = needs_extra(name)
        if extra is None:
            assert error is None, f"{name} needs a package the base install lacks: {error}"
        else:
            assert error is not None and error.startswith("ModuleNotFoundError"), (name, error)
            assert f"pip install 'seamline[{extra}]'" in error, (name, error)
    assert any(needs_extra(n) is None for n in results) and any(needs_extra(n) for n in results)


def test_python_m_seamline_dashboards_without_the_extra_says_what_to_install(without_extras, tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "seamline.dashboards", str(tmp_path / "out")],
        env=without_extras,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0
    assert "pip install 'seamline[dashboards]'" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_each_optional_package_is_an_extra_in_pyproject():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert "grafana-foundation-sdk" in " ".join(extras["dashboards"])
    assert "seamline[dashboards]" in extras["test"]  # the README's install (.[test]) runs the dashboards tests
    deps = " ".join(PYPROJECT["project"]["dependencies"])
    assert "grafana-foundation-sdk" not in deps


def test_every_data_file_in_the_package_is_declared_and_every_declaration_matches():
    declared = PYPROJECT["tool"]["setuptools"]["package-data"]
    data = [p for p in PACKAGE.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")]
    assert data, "the run pages' assets are package data"

    def matches(path: Path, package: str, pattern: str) -> bool:
        base = PACKAGE.parent.joinpath(*package.split("."))
        return path.parent == base and fnmatch.fnmatch(path.name, pattern)

    for path in data:
        assert any(matches(path, pkg, pat) for pkg, pats in declared.items() for pat in pats), (
            f"{path.relative_to(ROOT)} is not in [tool.setuptools.package-data]: an install would lack it"
        )
    for pkg, pats in declared.items():
        for pat in pats:
            assert any(matches(path, pkg, pat) for path in data), f"package-data {pkg}: {pat!r} matches no file"

"""The unit tests mirror the source: tests/unit/<package>/test_<module>.py tests src/seamline/<package>/<module>.py.

A newcomer looking for the tests of a module, or the module of a failing test, finds it by name alone (mitmproxy's
test/filename_matching.py holds its suite to the same rule). Unit tests that are not one module's are listed in
ALLOWED, each with the reason.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parent
UNIT = TESTS / "unit"
SRC = TESTS.parent / "src" / "seamline"

ALLOWED: dict[str, str] = {
    "test_packaging.py": "the distribution as installed (pyproject extras, package data, imports without extras), no one module",
}


def unit_test_files() -> list[str]:
    return sorted(p.relative_to(UNIT).as_posix() for p in UNIT.rglob("test_*.py"))


def module_under_test(test_file: str) -> Path:
    """`proxy/test_routing.py` → src/seamline/proxy/routing.py."""
    path = Path(test_file)
    return SRC / path.parent / path.name.removeprefix("test_")


def test_every_unit_test_file_names_an_existing_module() -> None:
    strays = [
        f"tests/unit/{f} (no {module_under_test(f).relative_to(SRC.parent.parent).as_posix()})"
        for f in unit_test_files()
        if f not in ALLOWED and not module_under_test(f).is_file()
    ]
    assert not strays, (
        "unit test files must mirror src/seamline/<package>/<module>.py; rename these, or add them to ALLOWED in "
        "tests/test_layout.py with the reason they test no one module:\n  " + "\n  ".join(strays)
    )


def test_allow_list_names_only_existing_files_that_need_it() -> None:
    stale = [f for f in ALLOWED if not (UNIT / f).is_file() or module_under_test(f).is_file()]
    assert not stale, f"drop these from ALLOWED in tests/test_layout.py (gone, or they mirror a module now): {stale}"


def import_name(test_file: Path) -> str:
    """The module name pytest's default ("prepend") import mode gives a test file: dotted from the topmost
    directory of an unbroken chain of __init__.py files, or the bare file name when its directory has none."""
    parts = [test_file.stem]
    directory = test_file.parent
    while (directory / "__init__.py").is_file():
        parts.insert(0, directory.name)
        directory = directory.parent
    return ".".join(parts)


def test_no_two_test_modules_share_an_import_name() -> None:
    """Two `test_cli.py` outside packages both import as `test_cli`, and pytest refuses the second
    ("import file mismatch"); tests/unit/<package>/__init__.py keeps mirrored names apart."""
    by_name: dict[str, list[str]] = defaultdict(list)
    for path in TESTS.rglob("test_*.py"):
        by_name[import_name(path)].append(path.relative_to(TESTS).as_posix())
    clashes = {name: paths for name, paths in by_name.items() if len(paths) > 1}
    assert not clashes, f"these test files would import under one name (add an __init__.py, or rename): {clashes}"

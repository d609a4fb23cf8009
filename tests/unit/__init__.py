"""Unit tests, mirroring src/seamline/ module for module (tests/test_layout.py holds them to it).

These __init__.py files make each directory a package, so same-named test modules in different packages
(test_cli.py for seamline/cli.py and for seamline/demo/cli.py) import as distinct modules under pytest's
default import mode, which would otherwise import both as a top-level `test_cli` and refuse the second.
"""

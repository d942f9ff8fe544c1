"""One-way layers, read from the source (nothing imported): musicgenre is the domain and imports no
driver; monitoring builds on musicgenre only; stages on musicgenre; flows may import them all."""

from __future__ import annotations

import pytest

from musicgenre.config import PROJECT_ROOT
from tests.imports import PACKAGES, direct_imports, module_name

# package -> the project packages it must never import (anywhere in a module, a function-level import too)
FORBIDDEN = {"musicgenre": {"stages", "flows", "monitoring"}, "monitoring": {"flows", "stages"}, "stages": {"flows"}}


def package_modules(package: str) -> list:
    return sorted((PROJECT_ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_points_up_the_layers(package):
    upward = {
        f"{module_name(path)} imports {name}"
        for path in package_modules(package)
        for name in direct_imports(path)
        if name.split(".")[0] in FORBIDDEN[package]
    }
    assert not upward


def test_the_graph_reader_sees_function_level_imports():
    """flows.drift imports monitoring.check inside a task and musicgenre.config at the top: both count."""
    found = direct_imports(PROJECT_ROOT / "flows" / "drift.py")
    assert {"monitoring.check", "monitoring.scoring", "musicgenre.config"} <= found
    assert set(PACKAGES) == {"musicgenre", "stages", "flows", "monitoring"}

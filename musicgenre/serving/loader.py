"""Open a model bundle with the bundle's own code, not the installed project's.

Standard library only: MLflow's pyfunc wrapper loads this file by path from inside a bundle, and the
project loads it from the bundle it opens, so a registry version always runs the code it was
registered with. The bundle's copy of the package is imported under a private name (its modules
import each other relatively), beside whatever version of the project is installed.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

CODE_FOLDER = "code"
PACKAGE = "musicgenre"
MANIFEST_FILE = "manifest.json"


def private_name(bundle: Path) -> str:
    """One module name per distinct bundle manifest (which hashes every file, code included)."""
    digest = hashlib.sha256((Path(bundle) / MANIFEST_FILE).read_bytes()).hexdigest()[:16]
    return f"_{PACKAGE}_bundle_{digest}"


def load_package(bundle: Path) -> Any:
    """The bundle's copy of the package, imported once per process under its private name."""
    bundle = Path(bundle)
    root = bundle / CODE_FOLDER / PACKAGE
    if not (root / "__init__.py").is_file():
        raise FileNotFoundError(f"{root}: the bundle carries no code")
    name = private_name(bundle)
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, root / "__init__.py", submodule_search_locations=[str(root)]
        )
        if spec is None or spec.loader is None:
            raise ImportError(f"{root}: cannot be imported as a package")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]


def open_bundle(bundle: Path, **options: Any) -> Any:
    """The bundle's model (its serving.runtime.BundleModel), built by the bundle's own code."""
    package = load_package(bundle)
    runtime = importlib.import_module(f"{package.__name__}.serving.runtime")
    return runtime.BundleModel.open(Path(bundle), **options)

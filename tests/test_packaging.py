"""Packaging: the built wheel holds every file of the package tree (what the code opens beside itself, the
hub's schema.json and page templates, is there after a plain, non-editable ``pip install``), the build
uses nothing setuptools will drop, and every distribution the code imports is a declared dependency."""
import ast
import importlib.metadata
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def package_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in (root / "adapterxfer").rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(a copy of the package tree, the wheel built from it, the build's output)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # a copy, so that the build leaves nothing in the checkout
    shutil.copytree(ROOT / "adapterxfer", src / "adapterxfer", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps",
                            "-w", str(tmp / "dist"), str(src)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp / "dist").glob("adapterxfer-*.whl")
    return src, wheel, build.stdout + build.stderr


def test_the_wheel_ships_every_file_of_the_package(built):
    src, wheel, _ = built
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if not n.split("/")[0].endswith(".dist-info")}
    assert {"adapterxfer/hub/schema.json", "adapterxfer/hub/templates/base.html"} <= package_files(src)
    assert sorted(package_files(src) - shipped) == []


def test_the_build_uses_nothing_setuptools_has_dated_the_end_of(built):
    assert "SetuptoolsDeprecationWarning" not in built[2]


def imported_modules(root: Path) -> set[str]:
    """The top-level names of the absolute imports in the Python files below ``root``."""
    names = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def test_every_distribution_the_code_imports_is_a_declared_dependency():
    """Not only through another package's dependencies, which may change under us."""
    canonical = lambda name: re.sub(r"[-_.]+", "-", name).lower()  # noqa: E731
    block = re.search(r"^dependencies = \[(.*?)^\]", (ROOT / "pyproject.toml").read_text(), re.M | re.S)[1]
    declared = {canonical(re.match(r"[\w.-]+", spec)[0]) for spec in re.findall(r'"([^"]+)"', block)}
    third_party = imported_modules(ROOT / "adapterxfer") - set(sys.stdlib_module_names) - {"adapterxfer"}
    dists = importlib.metadata.packages_distributions()
    assert sorted({canonical(d) for name in third_party for d in dists[name]} - declared) == []

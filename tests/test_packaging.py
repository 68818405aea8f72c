"""The package installs under the zenfx namespace only, with every subpackage declared."""

from __future__ import annotations

import importlib.util

import tomllib
from conftest import REPO


def _declared() -> tuple[list[str], dict[str, str]]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    st = data["tool"]["setuptools"]
    return st["packages"], st["package-dir"]


def test_every_package_directory_is_declared():
    packages, package_dir = _declared()
    roots = {v: k for k, v in package_dir.items()}
    found = set()
    for root_dir, root_pkg in roots.items():
        for init in (REPO / root_dir).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / root_dir)
            found.add(".".join([root_pkg, *rel.parts]) if rel.parts else root_pkg)
    assert found <= set(packages), f"undeclared packages: {sorted(found - set(packages))}"


def test_no_generic_top_level_packages_and_typed_marker():
    assert importlib.util.find_spec("zenfx.cli") is not None
    assert importlib.util.find_spec("zenfx.zoo") is not None
    assert (REPO / "zenfx" / "py.typed").exists()
    _, package_dir = _declared()
    assert set(package_dir) == {"zenfx", "zenfx.cli", "zenfx.zoo"}


def test_constraints_pin_torch_and_torchvision():
    pins = dict(line.split("==", 1) for line in (REPO / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    import torch
    import torchvision

    assert torch.__version__.split("+")[0] == "2.14.1"
    assert torchvision.__version__.split("+")[0] == "0.29.1"

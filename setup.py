"""Packaging: the repository's top-level folders, installed beneath one import name.

``console/`` becomes ``signoff.console``, ``engine/`` ``signoff.engine``, ``themes/``
``signoff.themes`` and ``sample_flows/`` ``signoff.sample_flows``; the root package is
``src/signoff/`` (only ``__init__`` and ``__main__``). So ``pip install .`` puts nothing generic
into site-packages, and editable installs map the same folders through setuptools' editable
finder. Everything else about the distribution is in ``pyproject.toml``.
"""
from setuptools import find_packages, setup

PARTS = ("console", "engine", "themes", "sample_flows")
subpackages = find_packages(include=[f"{part}*" for part in PARTS])

setup(
    packages=["signoff", *(f"signoff.{name}" for name in subpackages)],
    package_dir={"signoff": "src/signoff", **{f"signoff.{part}": part for part in PARTS}},
)

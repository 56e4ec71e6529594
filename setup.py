"""Packages of the wheel; everything else is in pyproject.toml.

flows/ and executors/ stay at the top of the repository (where Jina's YAML refers to them) and are
also installed inside the package, as ``loupe.resources.flows`` and ``loupe.resources.executors``
(package-dir mapping), so an installed loupe finds them with importlib.resources.
"""
from pathlib import Path

from setuptools import find_packages, setup

EXECUTORS = sorted(d.name for d in Path('executors').iterdir()
                   if d.is_dir() and (d / 'config.yml').is_file())

setup(
    packages=[*find_packages(include=['loupe', 'loupe.*']), 'loupe.resources.flows',
              'loupe.resources.executors', *(f'loupe.resources.executors.{e}' for e in EXECUTORS)],
    package_dir={'loupe.resources.flows': 'flows', 'loupe.resources.executors': 'executors'},
)

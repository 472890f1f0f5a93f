"""The environment the README's commands set up holds what a reader needs to open the study."""

from __future__ import annotations

import subprocess
import sys

from conftest import locked_versions


def test_jupyterlab_is_in_the_environment():
    out = subprocess.run([sys.executable, "-m", "jupyterlab", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip().split(".")[0] == "4"


def test_the_installed_versions_are_the_locked_ones():
    """`make` installs requirements.lock, the versions the canonical runs used; an environment that
    differs (a pip install into your own environment resolves the ranges to newer releases) is named
    here, package by package, because the committed numbers may not reproduce in it."""
    from importlib import metadata

    from packaging.version import Version

    pins = locked_versions()
    assert len(pins) > 100 and pins["torch"] == "2.13.0"
    differ = []
    for name, version in sorted(pins.items()):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            differ.append(f"{name}: locked {version}, not installed")
            continue
        if Version(Version(installed).public) != Version(version):  # the CPU wheel of torch is 2.13.0+cpu
            differ.append(f"{name}: locked {version}, installed {installed}")
    assert not differ, "the environment differs from requirements.lock (run `make`):\n" + "\n".join(differ)


def test_the_lock_satisfies_every_range_of_pyproject():
    """pyproject.toml keeps version ranges for users who install into their own environment; the lock
    must pin every dependency inside its range (a dependency added without `make lock` fails here)."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    from conftest import ROOT

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = locked_versions()
    for text in project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is in pyproject.toml but not in requirements.lock: run `make lock`"
        assert req.specifier.contains(pins[name], prereleases=True), (text, pins[name])

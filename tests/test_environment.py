"""The environment the README's commands set up holds what a reader needs to open the study."""

from __future__ import annotations

import subprocess
import sys


def test_jupyterlab_is_in_the_environment():
    out = subprocess.run([sys.executable, "-m", "jupyterlab", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip().split(".")[0] == "4"

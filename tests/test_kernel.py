"""The registered `copystudy` kernel computes what the runner computes, and its shutdown noise stays out of sight."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import BytesIO

import pytest

from conftest import ROOT, run_cli
from copystudy.common.parallel import THREAD_VARIABLES
from copystudy.runner import kernel, plan


def test_the_kernel_spec_sets_the_runners_thread_variables():
    from jupyter_client.kernelspec import KernelSpecManager

    assert kernel.ensure_kernel() == "copystudy"
    spec = KernelSpecManager().get_kernel_spec("copystudy")
    assert os.path.abspath(spec.argv[0]) == os.path.abspath(sys.executable)
    assert {k: spec.env.get(k) for k in THREAD_VARIABLES} == {k: "1" for k in THREAD_VARIABLES}


SHUTDOWN_TRACEBACK = b"""[IPKernelApp] ERROR | Exception in message handler:
Traceback (most recent call last):
  File "/x/ipykernel/kernelbase.py", line 508, in dispatch_shell
    await result
  File "zmq/backend/cython/_zmq.py", line 1339, in zmq.backend.cython._zmq._check_closed
zmq.error.ZMQError: Socket operation on non-socket
"""
OTHER_TRACEBACK = b"""[IPKernelApp] ERROR | Exception in message handler:
Traceback (most recent call last):
  File "/x/ipykernel/kernelbase.py", line 508, in dispatch_shell
    await result
ValueError: something real
"""


def test_the_kernel_stderr_loses_only_the_shutdown_traceback():
    """Copied line for line, except the closed-socket traceback a kernel logs when Ctrl-C stops it mid-cell."""
    def forwarded(data: bytes) -> bytes:
        out = []
        kernel.forward_stderr(BytesIO(data), out.append)
        return b"".join(out)

    before, after = b"[IPKernelApp] WARNING | a warning\n", b"a last line\n"
    assert forwarded(before + SHUTDOWN_TRACEBACK + after) == before + after
    assert forwarded(before + OTHER_TRACEBACK + after) == before + OTHER_TRACEBACK + after
    assert forwarded(OTHER_TRACEBACK[:60]) == OTHER_TRACEBACK[:60]  # cut off: still shown


@pytest.mark.notebook
@pytest.mark.slow
def test_a_notebook_run_by_hand_on_the_kernel_gives_the_runners_metrics(tmp_path):
    """The smoke set of lm_compression executed on the registered kernel with papermill alone (as a
    notebook run in JupyterLab: no runner, an environment asking for 2 threads) writes the runner's
    metrics.json, byte for byte. Its numbers depend on the thread count (2 threads give other bytes:
    measured when this test was written), so the kernel spec's thread variables are what makes them equal."""
    name, params = "lm_compression", ROOT / "params" / "lm_compression" / "smoke.yaml"
    run_cli("run", name, "--params", str(params), "--out", str(tmp_path / "runner"), "--quiet")
    values, _ = plan.resolve_parameters(name, params, [], ROOT)
    by_hand = tmp_path / "by-hand"
    by_hand.mkdir()
    code = ("import json, sys, papermill\n"
            "papermill.execute_notebook(sys.argv[1], sys.argv[2], parameters=json.loads(sys.argv[3]),\n"
            "                           kernel_name='copystudy', cwd=sys.argv[4], progress_bar=False)\n")
    env = {**os.environ, "COPYSTUDY_PROGRESS": "0", **{k: "2" for k in THREAD_VARIABLES}}
    subprocess.run([sys.executable, "-c", code, str(plan.find_notebook(name, ROOT)), str(by_hand / "executed.ipynb"),
                    json.dumps(values), str(by_hand)], env=env, check=True, capture_output=True)
    assert (by_hand / "metrics.json").read_bytes() == (tmp_path / "runner" / "metrics.json").read_bytes()

"""The `copystudy` Jupyter kernel: registered with the runner's thread counts, started on local sockets.

The kernel spec (kernel.json) sets one thread for torch, BLAS and OpenMP (`THREAD_VARIABLES`), as the
runner does, so a notebook rerun by hand in JupyterLab on the `copystudy` kernel computes what the
runner computed: the thread count changes floating-point sums. `make install` registers it through
`ensure_kernel`, and so does every run. `copystudy run --threads N` gives its own kernel N threads.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from contextlib import contextmanager

from copystudy.common.parallel import THREAD_VARIABLES

KERNEL_NAME = "copystudy"
KERNEL_ENV = {k: "1" for k in THREAD_VARIABLES}  # what a kernel started by hand gets, as a run's default


def ensure_kernel() -> str:
    """Register this environment's python as the 'copystudy' Jupyter kernel, with the runner's thread
    variables in its spec, unless it is registered so already."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    def ours() -> bool:
        try:
            spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
        except NoSuchKernel:
            return False
        same_python = os.path.abspath(spec.argv[0]) == os.path.abspath(sys.executable)
        return same_python and all(spec.env.get(k) == v for k, v in KERNEL_ENV.items())

    if not ours():
        from ipykernel.kernelspec import install

        install(kernel_name=KERNEL_NAME, display_name="copystudy", prefix=sys.prefix, env=dict(KERNEL_ENV))
        if not ours():
            spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
            raise RuntimeError(f"a kernel named {KERNEL_NAME!r} at {spec.resource_dir} runs {spec.argv[0]} with "
                               f"{spec.env or 'no thread settings'}, not this environment's {sys.executable} with "
                               f"{KERNEL_ENV}; remove it (jupyter kernelspec remove {KERNEL_NAME}) and run again")
    return KERNEL_NAME


@contextmanager
def kernel_threads(threads: int | None):
    """Thread counts (torch, BLAS, OpenMP) for a kernel started inside the block: `threads`, by default 1.

    The study's models are small: a second thread makes a training step 1.4-1.6x faster on an idle
    machine and several times slower when it spins against another busy process, and the thread count
    changes floating-point sums. One thread per process, and more processes (`--workers`) for the
    parallel parts, keeps a run fast on a shared machine and its numbers the same on any machine."""
    threads = 1 if threads is None else threads
    saved = {k: os.environ.get(k) for k in THREAD_VARIABLES}
    os.environ.update({k: str(threads) for k in THREAD_VARIABLES})
    try:
        yield
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


# the traceback a kernel logs when it is shut down in the middle of a cell (Ctrl-C): its reply finds its
# sockets closed. It says nothing the runner's one-line error does not.
_HANDLER_ERROR = re.compile(rb"Exception in message handler")
_LAST_LINE = re.compile(rb"^[A-Za-z_][\w.]*(: |$)")
_SHUTDOWN_NOISE = re.compile(rb"^zmq\.error\.ZMQError\b")


def forward_stderr(pipe, write) -> None:
    """Copy the kernel's stderr lines to `write`, less the closed-socket traceback of a shutdown mid-cell."""
    held: list[bytes] = []
    for line in iter(pipe.readline, b""):
        if not held and not _HANDLER_ERROR.search(line):
            write(line)
            continue
        held.append(line)
        ended = len(held) > 2 and _LAST_LINE.match(line) and not line.startswith((b"Traceback", b"During"))
        if ended or len(held) > 400:
            if not _SHUTDOWN_NOISE.match(line):
                for kept in held:
                    write(kept)
            held = []
    for kept in held:
        write(kept)


def _write_stderr(line: bytes) -> None:
    try:
        sys.stderr.write(line.decode("utf-8", errors="replace"))
        sys.stderr.flush()
    except (OSError, ValueError):  # our stderr went away
        pass


def local_kernel_manager():
    """jupyter_client's kernel manager with the kernel on local (IPC) sockets rather than TCP ports (the
    kernel never leaves this machine, opens no port, and does not warn about unencrypted TCP), this
    run's thread counts over the kernel spec's, and the kernel's stderr copied to ours through
    `forward_stderr`."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class LocalKernelManager(AsyncKernelManager):
        @default("transport")
        def _default_transport(self):
            return "ipc"

        async def _async_pre_start_kernel(self, **kw):
            spec = self.kernel_spec
            spec.env = {**spec.env, **{k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ}}
            return await super()._async_pre_start_kernel(**kw)

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            kw["stderr"] = subprocess.PIPE
            await super()._async_launch_kernel(kernel_cmd, **kw)
            process = getattr(self.provisioner, "process", None)
            if process is not None and process.stderr is not None:
                threading.Thread(target=forward_stderr, args=(process.stderr, _write_stderr), daemon=True).start()

    return LocalKernelManager

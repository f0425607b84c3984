"""The real kwq_scheduler (bazel-bin/server/kwq_scheduler, built by tools/test.sh before
pytest runs) as a child process on an OS-chosen port, killed by its pid at the end."""
import contextlib
import os
import subprocess
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "..", "..", ".."))


@contextlib.contextmanager
def running_scheduler(*flags):
    """Yields the address of a kwq_scheduler on embedded Kafka started with `flags`."""
    binary = os.path.join(ROOT, "bazel-bin", "server", "kwq_scheduler")
    if not os.path.exists(binary):
        pytest.fail("%s is missing: run `bazel build //server:kwq_scheduler` first "
                    "(tools/test.sh does)" % binary)
    proc = subprocess.Popen(
        [binary, "--kafka=embedded", "--listen=127.0.0.1:0", "--partitions=1", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    address = None
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if "listening on " in line:
                address = line.split("listening on ")[1].split()[0]
                break
        assert address, "kwq_scheduler did not say where it listens"
        yield address
    finally:
        proc.kill()
        proc.wait(timeout=10)

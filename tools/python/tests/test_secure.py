"""The Python client and worker against a secured kwq_scheduler: TLS (a private CA
made by tools/tls/make-certs.sh) and bearer tokens with roles (server/auth/README.md).

The scheduler is the real binary (bazel-bin/server/kwq_scheduler, built by tools/test.sh
before pytest runs), started on an OS-chosen port and killed by its pid at the end.
"""
import hashlib
import os
import secrets
import subprocess
import sys
import threading
import time

import grpc
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from kwq_client import Success, Worker, connect_scheduler, submit  # noqa: E402
from scheduler_process import running_scheduler  # noqa: E402

TOKENS = {name: "kwq_" + secrets.token_urlsafe(32) for name in ("submitter", "workers", "viewer")}
ROLES = {"submitter": "submit,view", "workers": "work", "viewer": "view"}


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["bash", os.path.join(ROOT, "tools", "tls", "make-certs.sh"), str(d)],
                   check=True, stderr=subprocess.DEVNULL)
    identities = d / "identities"
    identities.write_text("".join(
        "token sha256:%s %s %s\n" % (hashlib.sha256(t.encode()).hexdigest(), name, ROLES[name])
        for name, t in TOKENS.items()))
    with running_scheduler("--tls_cert=%s" % (d / "server.pem"),
                           "--tls_key=%s" % (d / "server.key"),
                           "--identities_file=%s" % identities) as address:
        yield address, str(d / "ca.pem")


def test_tokens_and_roles_are_checked(grid):
    address, ca = grid
    with pytest.raises(grpc.RpcError) as e:
        submit(connect_scheduler(address, ca_file=ca), [{"job_id": "py-sec"}])
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as e:
        submit(connect_scheduler(address, ca_file=ca, token=TOKENS["viewer"]),
               [{"job_id": "py-sec"}])
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as e:  # plaintext to a TLS port
        submit(connect_scheduler(address, token=TOKENS["submitter"]), [{"job_id": "py-sec"}],
               timeout=5)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_worker_with_the_work_role_runs_tasks(grid):
    address, ca = grid
    done = set()
    lock = threading.Lock()

    def handle(ctx):
        with lock:
            done.add(ctx.task.id)
        return Success(b"ok")

    w = Worker(address, handle, slots=2, worker_id="py-secure", ca_file=ca,
               token=TOKENS["workers"])
    runner = threading.Thread(target=w.run)
    runner.start()
    try:
        stub = connect_scheduler(address, ca_file=ca, token=TOKENS["submitter"])
        submit(stub, [{"id": "sec-%d" % i, "job_id": "py-sec-run"} for i in range(5)])
        deadline = time.time() + 60
        while time.time() < deadline and len(done) < 5:
            time.sleep(0.02)
        assert len(done) == 5
    finally:
        w.stop(grace=2)
        runner.join(timeout=30)
    assert not runner.is_alive()

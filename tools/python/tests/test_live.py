"""The Python client and worker against a running kwq_scheduler (embedded Kafka).

The scheduler is the real binary (bazel-bin/server/kwq_scheduler, built by tools/test.sh
before pytest runs), started on an OS-chosen port and killed by its pid at the end.
"""
import os
import sys
import threading
import time

import grpc
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from kwq_client import Error, Success, Worker, connect_scheduler, submit  # noqa: E402
from scheduler_process import running_scheduler  # noqa: E402


@pytest.fixture(scope="module")
def scheduler():
    with running_scheduler("--heartbeat_period_ms=200", "--retry_backoff_ms=10") as address:
        yield address


def wait_for(cond, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.02)  # polling counters the worker threads update
    return cond()


def test_submit_validates_and_returns_ids(scheduler):
    stub = connect_scheduler(scheduler)
    resp = submit(stub, [{"job_id": "py-job", "priority": 3}, {"id": "py-fixed", "job_id": "py-job"}])
    assert len(resp.task_ids) == 2 and resp.task_ids[1] == "py-fixed"
    again = submit(stub, [{"id": "py-fixed", "job_id": "py-job"}])
    assert list(again.duplicate_ids) == ["py-fixed"]
    with pytest.raises(grpc.RpcError) as e:
        submit(stub, [{"job_id": "py-job", "priority": 12}])
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "priority 12" in e.value.details()


def test_python_worker_runs_tasks_and_retries_errors(scheduler):
    seen = {}
    succeeded = set()
    lock = threading.Lock()

    def handle(ctx):
        with lock:
            seen.setdefault(ctx.task.id, []).append(ctx.attempt)
        if ctx.task.payload == b"flaky" and ctx.attempt == 1:
            return Error("first attempt fails")
        if ctx.task.payload == b"raise" and ctx.attempt == 1:
            raise ValueError("bad value")
        if ctx.task.job_id == "py-run":
            with lock:
                succeeded.add(ctx.task.id)
        return Success(ctx.task.payload.upper())

    w = Worker(scheduler, handle, slots=4, worker_id="py-worker")
    runner = threading.Thread(target=w.run)
    runner.start()
    try:
        stub = connect_scheduler(scheduler)
        tasks = [{"id": "py-%d" % i, "job_id": "py-run", "payload": b"x"} for i in range(20)]
        tasks.append({"id": "py-flaky", "job_id": "py-run", "payload": b"flaky"})
        tasks.append({"id": "py-raise", "job_id": "py-run", "payload": b"raise"})
        submit(stub, tasks)
        # 22 tasks complete; the flaky and raising ones on their second attempt.
        # (Tasks of the other test's job may run here too: count this job's.)
        assert wait_for(lambda: len(succeeded) == 22), "completed %d" % len(succeeded)
        assert w.failed == 2
        assert seen["py-flaky"] == [1, 2] and seen["py-raise"] == [1, 2]
        # Every completion was acknowledged as durable (nothing left to resend).
        assert wait_for(lambda: not w._unacked)
        assert w.stale_acks == 0
        assert w.connects == 1
    finally:
        w.stop(grace=2)
        runner.join(timeout=30)
    assert not runner.is_alive()

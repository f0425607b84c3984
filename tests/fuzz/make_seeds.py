#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/).

Run with the repository's Python (tools/python/.venv/bin/python); the seeds are
checked in, so this is only for regenerating them.
"""
import os
import struct
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "python"))
import kwq_client._gen  # noqa: E402,F401
from kwq.v1 import control_pb2, task_pb2, worker_pb2  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "corpus")


def chunk(b):
    assert len(b) < 0xf0 * 1 or True
    if len(b) < 0xf0:
        return bytes([len(b)]) + b
    hi, lo = divmod(len(b), 256)
    return bytes([0xf0 + hi, lo]) + b


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# task_record: valid tasks, tasks that fail validation, garbage.
t = task_pb2.Task(id="t1", job_id="j1", priority=5, payload=b"hi",
                  affinity_keys=["k"], required_labels=["gpu"], max_attempts=2)
t.tags["currency"] = "USD"
write("task_record", "valid", t.SerializeToString())
write("task_record", "no_id", task_pb2.Task(job_id="j").SerializeToString())
write("task_record", "bad_job", task_pb2.Task(id="a", job_id="a b").SerializeToString())
t2 = task_pb2.Task(id="t2", job_id="j")
t2.submit_time.nanos = -5
write("task_record", "bad_time", t2.SerializeToString())
write("task_record", "garbage", b"\xff\xfe\x00garbage")

# worker_session: op byte (low 3 bits: kind, high 4: connection), then data.
hello = worker_pb2.WorkerMessage(hello=worker_pb2.Hello(
    worker_id="w1", slots=2, implicit_credits=True)).hello
upd = worker_pb2.WorkerMessage(update=worker_pb2.TaskUpdate(
    token=worker_pb2.FencingToken(task_id="t1", attempt=1, lease_id="fuzz-1.x"),
    state=task_pb2.COMPLETED, result=b"ok"))
credits = worker_pb2.WorkerMessage(credits=worker_pb2.Credits(add=2147483647))
hb = worker_pb2.WorkerMessage(heartbeat=worker_pb2.Heartbeat())
script = (bytes([0x00]) + chunk(hello.SerializeToString()) +
          bytes([0x04, 1, 0, 1, 5]) + bytes([0x04, 2, 1, 1, 9]) +
          bytes([0x01]) + chunk(credits.SerializeToString()) +
          bytes([0x01]) + chunk(upd.SerializeToString()) +
          bytes([0x05, 1]) + bytes([0x03, 50]) + bytes([0x01]) +
          chunk(hb.SerializeToString()) + bytes([0x02]) +
          bytes([0x06, 2, 0, 1]) + chunk(b"fuzz-1.0123") + bytes([0x03, 200]))
write("worker_session", "lifecycle", script)
bad = worker_pb2.Hello(worker_id="w2", slots=1)
bad.in_flight.add(task_id="", lease_id="s1-1")
write("worker_session", "empty_in_flight", bytes([0x10]) + chunk(bad.SerializeToString()))
ctl = control_pb2.ControlRecord(paused=True, requested_by="ops")
ctl.scope.all = True
write("worker_session", "pause_then_garbage",
      bytes([0x07]) + chunk(b"pause/all") + chunk(ctl.SerializeToString()) +
      bytes([0x07]) + chunk(b"pause/all") + chunk(b"\xff garbage") +
      bytes([0x00]) + chunk(hello.SerializeToString()) + bytes([0x04, 1, 0, 1, 3]))

# control_record: key chunk, value chunk.
write("control_record", "pause_all", chunk(b"pause/all") + chunk(ctl.SerializeToString()))
write("control_record", "resume", chunk(b"pause/job/j1") + chunk(b""))
write("control_record", "two_bytes", chunk(b"cancel/job/J") + chunk(b"\x10\x01"))
write("control_record", "lease_key", chunk(b"lease-key") + chunk(b"k" * 32))

# tracker_event: a few events of one task.
evs = [task_pb2.TaskEvent(task_id="t", job_id="j", attempt=1, state=s)
       for s in (task_pb2.PENDING, task_pb2.ALLOCATED, task_pb2.RUNNING,
                 task_pb2.ERROR, task_pb2.COMPLETED)]
write("tracker_event", "lifecycle", b"".join(chunk(e.SerializeToString()) for e in evs))
big = task_pb2.TaskEvent(task_id="t", job_id="j", attempt=1, state=task_pb2.ERROR,
                         error="e" * 3000)
write("tracker_event", "big_error", chunk(big.SerializeToString()))
print("seeds written to", OUT)

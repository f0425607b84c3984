"""A Python worker speaking the kwq.v1 worker stream (Scheduler.Connect).

Protocol, as the C++ SDK speaks it: hello (id, slots, affinity keys, labels, tasks still
running) -> welcome (heartbeat period); one credit per free slot; assignments run on
`slots` threads; RUNNING, then COMPLETED (result) or ERROR (retryable or not); completions
are kept until the scheduler acknowledges them as durable (code 0), resent on code 14
(not durable yet) and dropped on code 9 (stale lease: fenced off); heartbeats at the
period asked for; drain on stop().
"""
import queue
import socket
import os
import threading
import time

import grpc

from kwq_client.security import channel
from kwq_client._gen import scheduler_pb2_grpc, worker_pb2, task_pb2

_ACK_OK, _ACK_STALE, _ACK_UNAVAILABLE = 0, 9, 14


class Success:
    def __init__(self, result=b""):
        self.result = result if isinstance(result, bytes) else str(result).encode()


class Error:
    def __init__(self, error, retryable=True):
        self.error = str(error)
        self.retryable = retryable


class TaskContext:
    def __init__(self, task, token):
        self.task = task
        self.token = token
        self.cancelled = threading.Event()

    @property
    def attempt(self):
        return self.task.attempt


class Worker:
    """Runs `handler(ctx) -> Success | Error` for every task assigned to this worker.

    run() blocks until stop(); it reconnects with backoff when the stream breaks. A
    handler that raises is reported as a retryable error.
    """

    def __init__(self, address, handler, slots=1, worker_id=None, affinity_keys=(),
                 labels=(), **security):
        self.address = address
        # TLS and token: ca_file, cert_file, key_file, token (kwq_client.security).
        self.security = security
        self.handler = handler
        self.slots = slots
        self.worker_id = worker_id or "%s-py-%d" % (socket.gethostname(), os.getpid())
        self.affinity_keys = list(affinity_keys)
        self.labels = list(labels)
        self.completed = 0
        self.failed = 0
        self.stale_acks = 0
        self.connects = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._out = None  # queue of WorkerMessage for the current stream
        self._running = {}  # lease id -> TaskContext
        self._unacked = {}  # lease id -> WorkerMessage (a completion)
        self._tasks = queue.Queue()
        self._threads = [threading.Thread(target=self._slot, daemon=True)
                         for _ in range(slots)]
        for t in self._threads:
            t.start()

    # --- public ---
    def run(self):
        backoff = 0.1
        while not self._stopping.is_set():
            welcomed = self._run_stream()
            if self._stopping.is_set():
                break
            backoff = 0.1 if welcomed else min(backoff * 2, 5.0)
            time.sleep(backoff)  # reconnect backoff

    def stop(self, grace=10.0):
        """Drain: take no more tasks, let running ones finish for `grace` s, then close."""
        self._stopping.set()
        self._send(worker_pb2.WorkerMessage(drain=worker_pb2.Drain()))
        deadline = time.time() + grace
        while time.time() < deadline:
            with self._lock:
                if not self._running and not self._unacked:
                    break
            time.sleep(0.02)  # polling the running set; tasks finish on their threads
        with self._lock:
            for ctx in self._running.values():
                ctx.cancelled.set()
        out = self._out
        if out is not None:
            out.put(None)  # ends the request stream: the scheduler sees the worker close

    # --- internals ---
    def _send(self, msg):
        out = self._out
        if out is not None:
            out.put(msg)

    def _requests(self, out, hello):
        yield hello
        while True:
            msg = out.get()
            if msg is None:
                return
            yield msg

    def _run_stream(self):
        out = queue.Queue()
        hello = worker_pb2.WorkerMessage(hello=worker_pb2.Hello(
            worker_id=self.worker_id, slots=self.slots, affinity_keys=self.affinity_keys,
            labels=self.labels, sdk="kwq-python/0.1"))
        with self._lock:
            for ctx in self._running.values():
                hello.hello.in_flight.append(ctx.token)
        stub = scheduler_pb2_grpc.SchedulerStub(channel(self.address, **self.security))
        welcomed = False
        heartbeat_stop = threading.Event()
        try:
            self._out = out
            for msg in stub.Connect(self._requests(out, hello)):
                kind = msg.WhichOneof("msg")
                if kind == "welcome":
                    welcomed = True
                    self.connects += 1
                    period = msg.welcome.heartbeat_period.ToTimedelta().total_seconds() or 2
                    with self._lock:
                        for t in msg.welcome.rejected:
                            ctx = self._running.get(t.lease_id)
                            if ctx:
                                ctx.cancelled.set()
                        resend = list(self._unacked.values())
                    for m in resend:
                        out.put(m)
                    threading.Thread(target=self._heartbeat, args=(out, period, heartbeat_stop),
                                     daemon=True).start()
                elif kind == "assignment":
                    ctx = TaskContext(msg.assignment.task, msg.assignment.token)
                    with self._lock:
                        self._running[ctx.token.lease_id] = ctx
                    self._tasks.put(ctx)
                elif kind == "cancel":
                    with self._lock:
                        ctx = self._running.get(msg.cancel.token.lease_id)
                    if ctx:
                        ctx.cancelled.set()
                elif kind == "ack":
                    self._on_ack(out, msg.ack)
        except grpc.RpcError:
            pass  # the stream broke: reconnect (unless stopping)
        finally:
            heartbeat_stop.set()
            self._out = None
        return welcomed

    def _on_ack(self, out, ack):
        with self._lock:
            m = self._unacked.get(ack.token.lease_id)
            if m is None:
                return
            if ack.code == _ACK_UNAVAILABLE:
                out.put(m)  # not durable yet: send it again
                return
            if ack.code == _ACK_STALE:
                self.stale_acks += 1
            del self._unacked[ack.token.lease_id]

    def _heartbeat(self, out, period, stop):
        while not stop.wait(period):
            out.put(worker_pb2.WorkerMessage(heartbeat=worker_pb2.Heartbeat()))

    def _slot(self):
        while True:
            ctx = self._tasks.get()
            self._send(worker_pb2.WorkerMessage(update=worker_pb2.TaskUpdate(
                token=ctx.token, state=task_pb2.RUNNING)))
            try:
                outcome = self.handler(ctx)
            except Exception as e:  # the handler's failure is the task's error
                outcome = Error("handler raised: %r" % (e,), retryable=True)
            update = worker_pb2.TaskUpdate(token=ctx.token)
            if isinstance(outcome, Success):
                update.state = task_pb2.COMPLETED
                update.result = outcome.result
                self.completed += 1
            else:
                if not isinstance(outcome, Error):
                    outcome = Error("handler returned %r, not Success or Error" % (outcome,))
                update.state = task_pb2.ERROR
                update.error = outcome.error
                update.retryable = outcome.retryable
                update.cancelled = ctx.cancelled.is_set()
                self.failed += 1
            msg = worker_pb2.WorkerMessage(update=update)
            with self._lock:
                self._running.pop(ctx.token.lease_id, None)
                self._unacked[ctx.token.lease_id] = msg
            self._send(msg)
            if not self._stopping.is_set():
                self._send(worker_pb2.WorkerMessage(credits=worker_pb2.Credits(add=1)))

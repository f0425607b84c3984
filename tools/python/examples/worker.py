#!/usr/bin/env python3
"""A Python worker that reverses payloads (the stream protocol, in Python).

    tools/python/.venv/bin/python tools/python/examples/worker.py --scheduler 127.0.0.1:50051
"""
import argparse
import os
import signal
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from kwq_client import Error, Success, Worker  # noqa: E402


def handle(ctx):
    if not ctx.task.payload:
        return Error("empty payload", retryable=False)
    return Success(ctx.task.payload[::-1])


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scheduler", default="127.0.0.1:50051")
    p.add_argument("--slots", type=int, default=4)
    a = p.parse_args()
    w = Worker(a.scheduler, handle, slots=a.slots)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=w.stop).start())
    signal.signal(signal.SIGINT, lambda *_: threading.Thread(target=w.stop).start())
    w.run()


if __name__ == "__main__":
    main()

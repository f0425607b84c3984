#!/usr/bin/env python3
"""Submits N tasks of one job to a kwq scheduler and prints their ids.

    tools/python/.venv/bin/python tools/python/examples/submit.py --job demo --tasks 10
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from kwq_client import connect_scheduler, submit  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scheduler", default="127.0.0.1:50051")
    p.add_argument("--job", required=True)
    p.add_argument("--tasks", type=int, default=1)
    p.add_argument("--priority", type=int, default=0)
    p.add_argument("--payload", default="")
    a = p.parse_args()
    resp = submit(connect_scheduler(a.scheduler),
                  [{"job_id": a.job, "priority": a.priority, "payload": a.payload.encode(),
                    "tags": {"source": "python"}} for _ in range(a.tasks)])
    for task_id in resp.task_ids:
        print(task_id)


if __name__ == "__main__":
    main()

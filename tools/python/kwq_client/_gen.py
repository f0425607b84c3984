"""Puts the generated kwq.v1 modules (tools/python/gen) on the import path."""
import os
import sys

_GEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gen")
if _GEN not in sys.path:
    sys.path.insert(0, _GEN)

from kwq.v1 import scheduler_pb2, scheduler_pb2_grpc, task_pb2, worker_pb2  # noqa: E402,F401

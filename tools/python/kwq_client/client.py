"""Submitting tasks."""
from kwq_client._gen import scheduler_pb2, scheduler_pb2_grpc, task_pb2
from kwq_client.security import channel


def connect_scheduler(address="127.0.0.1:50051", **security):
    """A Scheduler stub for `address`; `security`: ca_file, cert_file, key_file, token,
    tls, server_name (see kwq_client.security; unset ones come from KWQ_* env vars)."""
    return scheduler_pb2_grpc.SchedulerStub(channel(address, **security))


def submit(stub, tasks, timeout=30.0):
    """Submits `tasks` (kwq.v1.Task messages or dicts of Task fields) in one batch.

    Returns the SubmitResponse (task_ids in request order, duplicate_ids). Raises
    grpc.RpcError on INVALID_ARGUMENT (the message names the task and field) or
    UNAVAILABLE (the batch was not durable: submit it again; ids make that idempotent).
    """
    msgs = [t if isinstance(t, task_pb2.Task) else task_pb2.Task(**t) for t in tasks]
    return stub.Submit(scheduler_pb2.SubmitRequest(tasks=msgs), timeout=timeout)

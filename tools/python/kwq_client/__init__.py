"""A small Python client for kwq, on the client generated from proto/ (tools/python/gen).

    from kwq_client import connect_scheduler, submit, Worker, Success, Error
"""
from kwq_client.client import connect_scheduler, submit  # noqa: F401
from kwq_client.security import channel  # noqa: F401
from kwq_client.worker import Error, Success, TaskContext, Worker  # noqa: F401

"""The Celery peer: a no-op task that records its run in Redis (to check exactly once)."""
import os

import redis
from celery import Celery

BROKER = os.environ.get("KWQ_BENCH_REDIS", "redis://127.0.0.1:6379/0")
app = Celery("kwqbench", broker=BROKER)
app.conf.update(task_ignore_result=True, worker_prefetch_multiplier=16,
                broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)
_r = None


@app.task(name="noop")
def noop(task_id, payload):
    global _r
    if _r is None:
        _r = redis.Redis.from_url(BROKER)
    _r.hincrby("kwqbench:runs", task_id, 1)

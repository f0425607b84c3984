"""Both services' /metrics against real processes, and the monitoring files that use them.

kwq_tracker (embedded Kafka) and kwq_scheduler on the tracker's cluster, a Python
worker running a job; then:
- the tracker's metrics count what it ingested, time the queries it answered, and
  show no lag once caught up; the scheduler's outcomes and run times count the job;
- both carry process_* and kwq_build_info, no NaN, and pass `promtool check metrics`;
- every metric named by tools/deploy/monitoring (the Grafana dashboard and the alert
  rules) is one the services export, so a renamed metric cannot leave a dead panel or
  an alert that never fires.
The rules' own unit tests are `promtool test rules` (tools/test.sh).
Binaries: bazel-bin/server/kwq_scheduler, bazel-bin/tracker/kwq_tracker.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import grpc
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from kwq_client import Success, Worker, channel, connect_scheduler, submit  # noqa: E402
from kwq.v1 import tracker_pb2, tracker_pb2_grpc  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
MONITORING = os.path.join(ROOT, "tools", "deploy", "monitoring")
JOB = "metrics-job"
N = 60


def start(cmd, pattern, timeout=60):
    """A child process and the match of `pattern` in its stdout so far."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, text=True)
    deadline = time.time() + timeout
    seen = ""
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen += line
        m = re.search(pattern, seen)
        if m:
            return proc, m
    proc.kill()
    proc.wait()
    pytest.fail(f"{cmd[0]} did not print /{pattern}/: {seen}")


def scrape(address):
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as r:
        return r.read().decode()


def sample(text, series):
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


def wait_for(cond, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)  # polling the services
    return cond()


@pytest.fixture(scope="module")
def grid():
    bins = {n: os.path.join(ROOT, "bazel-bin", *p) for n, p in
            (("scheduler", ("server", "kwq_scheduler")),
             ("tracker", ("tracker", "kwq_tracker")))}
    for b in bins.values():
        if not os.path.exists(b):
            pytest.fail(f"{b} is missing: tools/test.sh builds it")
    db = tempfile.mkdtemp(prefix="kwq-metrics-test-")
    procs = []
    try:
        # The real broker tools/test.sh started (librdkafka's mock cluster
        # refuses CreateTopics from a second process, so the tracker cannot
        # share a scheduler's embedded one).
        prefix = f"metrics{os.getpid()}"
        real = os.environ.get("KWQ_KAFKA_BOOTSTRAP")
        if not real:
            pytest.fail("KWQ_KAFKA_BOOTSTRAP is unset: run tools/test.sh, or "
                        "tools/kafka/start.sh and export what it prints")
        sched, m = start([bins["scheduler"], f"--bootstrap_servers={real}",
                          f"--topic_prefix={prefix}",
                          "--listen=127.0.0.1:0", "--metrics_listen=127.0.0.1:0",
                          "--partitions=1"],
                         r"listening on (\S+) \(kafka ([^,]+),.*metrics http://([^/]+)/")
        procs.append(sched)
        s_addr, kafka, s_metrics = m.groups()
        tracker, m = start([bins["tracker"], f"--bootstrap_servers={kafka}",
                            f"--topic_prefix={prefix}", "--partitions=1",
                            "--listen=127.0.0.1:0", f"--db={db}",
                            "--metrics_listen=127.0.0.1:0"],
                           r"listening on (\S+) .*metrics http://([^/]+)/")
        procs.append(tracker)
        t_addr, t_metrics = m.groups()
        yield {"scheduler": s_addr, "tracker": t_addr, "s_metrics": s_metrics,
               "t_metrics": t_metrics}
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=10)
        shutil.rmtree(db, ignore_errors=True)


@pytest.fixture(scope="module")
def ran(grid):
    """JOB of N tasks run to the end; the tracker asked a few queries."""
    w = Worker(grid["scheduler"], lambda ctx: Success(b""), slots=4,
               worker_id="metrics-test-worker")
    runner = threading.Thread(target=w.run)
    runner.start()
    tracker = tracker_pb2_grpc.TrackerStub(channel(grid["tracker"]))

    def done():
        try:
            return tracker.GetJobSummary(tracker_pb2.GetJobSummaryRequest(job_id=JOB),
                                         timeout=10).done
        except grpc.RpcError:
            return False
    try:
        submit(connect_scheduler(grid["scheduler"]),
               [{"id": f"{JOB}-{i}", "job_id": JOB} for i in range(N)])
        assert wait_for(done, 90), "the job did not finish"
        assert wait_for(lambda: sample(scrape(grid["s_metrics"]),
                                       'kwq_task_outcomes_total{outcome="completed"}') == N)
    finally:
        w.stop(grace=2)
        runner.join(timeout=30)
    for _ in range(3):
        tracker.GetTask(tracker_pb2.GetTaskRequest(task_id=f"{JOB}-1"))
    tracker.ListTasks(tracker_pb2.ListTasksRequest(job_id=JOB))
    return tracker


def test_tracker_metrics_count_ingest_queries_and_lag(grid, ran):
    text = wait_for(lambda: (lambda t: t if sample(
        t, "kwq_tracker_ingest_lag_records") == 0 else None)(scrape(grid["t_metrics"])))
    assert text, "the tracker's ingest lag did not reach 0"
    assert sample(text, "kwq_tracker_completed_total") == N
    assert sample(text, 'kwq_tracker_events_total{result="applied"}') >= N
    assert sample(text, "kwq_tracker_events_ingested_total") >= N
    assert sample(text, "kwq_tracker_ingest_lag_seconds") == 0
    assert sample(text, "kwq_tracker_ingest_up") == 1
    assert sample(text, "kwq_tracker_view_current") == 1
    assert sample(text, 'kwq_tracker_query_seconds_count{rpc="GetTask"}') == 3
    assert sample(text, 'kwq_tracker_query_seconds_count{rpc="ListTasks"}') == 1
    assert sample(text, 'kwq_tracker_query_seconds_count{rpc="GetJobSummary"}') >= 1
    assert sample(text, "kwq_tracker_rocksdb_memtable_bytes") > 0
    assert sample(text, "kwq_tracker_watch_streams") == 0
    assert 'kwq_build_info{service="tracker",version="' in text


def test_scheduler_metrics_count_outcomes_and_run_times(grid, ran):
    text = scrape(grid["s_metrics"])
    assert sample(text, 'kwq_task_outcomes_total{outcome="completed"}') == N
    assert sample(text, "kwq_tasks_completed_total") == N  # the old name, kept
    assert sample(text, "kwq_task_run_seconds_count") == N
    assert sample(text, "kwq_submit_to_start_seconds_count") == N
    assert sample(text, "process_resident_memory_bytes") > 1e6
    assert 'kwq_build_info{service="scheduler",version="' in text


@pytest.mark.parametrize("which", ["s_metrics", "t_metrics"])
def test_metrics_pass_promtool_and_have_no_nan(grid, ran, which):
    text = scrape(grid[which])
    assert "NaN" not in text
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                 "process_open_fds", "process_start_time_seconds"):
        assert sample(text, name) is not None, name
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: tools/setup.sh installs prometheus")
    r = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def exported_names(text):
    names = set()
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            names.add(m.group(1))
            if m.group(2) == "histogram":
                names.update(m.group(1) + s for s in ("_bucket", "_count", "_sum"))
    return names


def referenced_names(text):
    return set(re.findall(r"\b((?:kwq|process)_[a-z0-9_]+)\b", text))


def test_dashboard_and_alerts_use_only_exported_metrics(grid, ran):
    exported = exported_names(scrape(grid["s_metrics"])) | exported_names(
        scrape(grid["t_metrics"]))
    with open(os.path.join(MONITORING, "kwq-dashboard.json")) as f:
        dashboard = json.load(f)
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 14
    in_dashboard = set().union(*(referenced_names(e) for e in exprs))
    with open(os.path.join(MONITORING, "kwq-alerts.yml")) as f:
        rules = f.read()
    in_rules = {n for line in rules.splitlines() if line.strip().startswith("expr:")
                for n in referenced_names(line)}
    assert len(in_rules) >= 8
    assert in_dashboard - exported == set()
    assert in_rules - exported == set()

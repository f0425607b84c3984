"""kwq console in a real browser: headless Chromium (Debian's chromium and
chromedriver) drives the console of a `kwqctl dev` grid.

- The jobs page lists a finished job with the tracker's counts.
- The job page's tag breakdown equals the tracker's GetJobSummary tags.
- The Pause button pauses a waiting job (the scheduler's ListQueues lists it, the
  page shows PAUSED), and Resume undoes it.
- A screenshot of each page (jobs, job, task, workers) is written to
  $KWQ_CONSOLE_SCREENSHOTS (default: a temp dir; the ones in docs/console/ come
  from this test).

The console's numbers are compared with the tracker's RPC answers read here, not
with a count of its own. kwqctl is bazel-bin/tools/kwqctl (tools/test.sh builds it).
"""
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import grpc
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from kwq_client import Error, Success, Worker, connect_scheduler, submit  # noqa: E402
from kwq_client import channel  # noqa: E402
from kwq.v1 import scheduler_pb2, task_pb2, tracker_pb2, tracker_pb2_grpc  # noqa: E402
from webdriver import CHROMEDRIVER, CHROMIUM, Browser  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
JOB = "risk-eod"          # finished: 240 tasks, 2 of them fail
WAITING = "risk-waiting"  # never runs (no worker takes it): paused and resumed


def wait_for(cond, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)  # polling the tracker
    return cond()


@pytest.fixture(scope="module")
def grid():
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            pytest.fail(f"{path} is missing: tools/setup.sh installs chromium and "
                        "chromium-driver")
    kwqctl = os.path.join(ROOT, "bazel-bin", "tools", "kwqctl")
    if not os.path.exists(kwqctl):
        pytest.fail(f"{kwqctl} is missing: run `bazel build //tools:kwqctl` first")
    proc = subprocess.Popen(
        [kwqctl, "dev", "--scheduler-listen", "127.0.0.1:0", "--tracker-listen",
         "127.0.0.1:0", "--console-listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        text=True)
    try:
        ready = None
        deadline = time.time() + 60
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("ready:"):
                ready = line
                break
        assert ready, "kwqctl dev did not print its ready line"
        m = re.search(r"listening on (\S+) tracker (\S+) kafka \S+ console http://(\S+)", ready)
        assert m, ready
        yield {"scheduler": m.group(1), "tracker": m.group(2), "console": m.group(3)}
    finally:
        proc.kill()
        proc.wait(timeout=10)


class Pending:
    """What a job the tracker does not know yet looks like to the waits."""
    done = False

    class counts:
        total = 0


def summary(tracker, job):
    """The tracker's GetJobSummary, or None while it does not know the job."""
    try:
        return tracker.GetJobSummary(tracker_pb2.GetJobSummaryRequest(job_id=job),
                                     timeout=10)
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise


@pytest.fixture(scope="module")
def jobs(grid):
    """JOB run to the end by a Python worker; WAITING submitted after it stopped."""
    stub = connect_scheduler(grid["scheduler"])
    tracker = tracker_pb2_grpc.TrackerStub(channel(grid["tracker"]))
    tasks = []
    for i in range(240):
        tasks.append({"id": f"{JOB}-{i}", "job_id": JOB, "priority": i % 3,
                      "payload": b"fail" if i in (7, 77) else b"ok",
                      "tags": {"currency": ("USD", "EUR", "GBP")[i % 3],
                               "risk": ("CR01", "DV01")[i % 2]}})
    w = Worker(grid["scheduler"],
               lambda ctx: Error("curve missing") if ctx.task.payload == b"fail"
               else Success(b"done"), slots=8, worker_id="console-test-worker")
    runner = threading.Thread(target=w.run)
    runner.start()
    try:
        submit(stub, tasks)

        assert wait_for(lambda: (summary(tracker, JOB) or Pending()).done, 90), \
            "the job did not finish"
    finally:
        w.stop(grace=2)
        runner.join(timeout=30)
    submit(stub, [{"id": f"{WAITING}-{i}", "job_id": WAITING,
                   "tags": {"currency": "USD"}} for i in range(30)])
    assert wait_for(lambda: (summary(tracker, WAITING) or Pending()).counts.total == 30)
    return {"scheduler": stub, "tracker": tracker}


@pytest.fixture(scope="module")
def browser():
    with Browser() as b:
        yield b


@pytest.fixture(scope="module")
def shots():
    d = os.environ.get("KWQ_CONSOLE_SCREENSHOTS") or tempfile.mkdtemp(
        prefix="kwq-console-shots-")
    os.makedirs(d, exist_ok=True)
    return d


def numbers(text):
    return int(text.replace(",", "").strip())


def test_jobs_page_lists_the_job_with_the_trackers_counts(grid, jobs, browser, shots):
    s = jobs["tracker"].GetJobSummary(tracker_pb2.GetJobSummaryRequest(job_id=JOB))
    assert s.counts.total == 240 and s.counts.failed == 2
    browser.get(f"http://{grid['console']}/#/jobs")
    row = browser.wait(
        "const r = document.querySelector(`tr[data-job='${arguments[0]}']`);"
        "return r && document.body.dataset.ready === '1' ? {"
        " completed: r.querySelector('.completed').textContent,"
        " total: r.querySelector('.total').textContent,"
        " failed: r.querySelector('.failed').textContent,"
        " state: r.querySelector('.badge').textContent} : null;", JOB,
        what="the job's row")
    assert numbers(row["completed"]) == s.counts.completed == 238
    assert numbers(row["total"]) == s.counts.total
    assert numbers(row["failed"]) == s.counts.failed
    assert row["state"] == "FAILED"  # done, with failed tasks
    browser.screenshot(os.path.join(shots, "jobs.png"))


def test_job_page_tag_breakdown_equals_the_tracker(grid, jobs, browser, shots):
    s = jobs["tracker"].GetJobSummary(tracker_pb2.GetJobSummaryRequest(job_id=JOB))
    want = {t.tag: (t.counts.completed, t.counts.total) for t in s.tags}
    assert set(want) == {"currency=USD", "currency=EUR", "currency=GBP",
                         "risk=CR01", "risk=DV01"}, want
    browser.get(f"http://{grid['console']}/#/job/{JOB}")
    rows = browser.wait(
        "const rows = [...document.querySelectorAll('#tags tbody tr')];"
        "return rows.length ? rows.map((r) => [r.dataset.tag,"
        " r.querySelector('.completed').textContent,"
        " r.querySelector('.total').textContent]) : null;", what="the tag table")
    got = {tag: (numbers(c), numbers(t)) for tag, c, t in rows}
    assert got == want
    # The recent errors link to their tasks, and the throughput chart was drawn.
    errors = browser.wait("return [...document.querySelectorAll('#errors a')]"
                          ".map((a) => a.textContent);", what="recent errors")
    assert set(errors) <= {f"{JOB}-7", f"{JOB}-77"} and errors
    assert browser.script("return !!document.querySelector('#thr') &&"
                          " document.querySelector('#thr').width > 0;")
    # The run-time histogram counts every completed task of the sample (up to 500,
    # here the job's 238).
    runs = browser.wait(
        "const c = Chart.getChart(document.getElementById('dist'));"
        "const n = c ? c.data.datasets[1].data.reduce((a, b) => a + b, 0) : 0;"
        "return n || null;", what="the run-time histogram")
    assert runs == s.counts.completed == 238
    browser.screenshot(os.path.join(shots, "job.png"))


def test_job_page_priority_breakdown_equals_the_tracker(grid, jobs, browser, shots):
    s = jobs["tracker"].GetJobSummary(tracker_pb2.GetJobSummaryRequest(job_id=JOB))
    want = {p.priority: (p.counts.completed, p.counts.total) for p in s.priorities}
    assert want == {0: (80, 80), 1: (79, 80), 2: (79, 80)}  # 7 and 77 failed
    browser.get(f"http://{grid['console']}/#/job/{JOB}")
    rows = browser.wait(
        "const r = [...document.querySelectorAll('#priorities tbody tr')].map((tr) =>"
        " [Number(tr.dataset.priority), tr.querySelector('.completed').textContent,"
        " tr.querySelector('.total').textContent]); return r.length ? r : null;",
        what="the priority table")
    assert {p: (numbers(c), numbers(t)) for p, c, t in rows} == want
    assert [r[0] for r in rows] == sorted(want, reverse=True)  # highest first


def test_task_page_shows_the_attempts_of_a_failed_task(grid, jobs, browser, shots):
    t = jobs["tracker"].GetTask(tracker_pb2.GetTaskRequest(task_id=f"{JOB}-7"))
    browser.get(f"http://{grid['console']}/#/task/{JOB}-7")
    n = browser.wait("return document.querySelectorAll('#attempts tr.attempt').length;",
                     what="the attempts table")
    assert n == len(t.history) == 3  # max_task_errors: three attempts, then FAILED
    assert "curve missing" in browser.script("return document.body.textContent;")
    browser.screenshot(os.path.join(shots, "task.png"))


def test_task_page_shows_the_result_of_a_completed_task(grid, jobs, browser, shots):
    # The worker returned b"done" (the tracker keeps only its size; the page reads
    # the bytes from the results topic near the task's finish).
    t = jobs["tracker"].GetTask(tracker_pb2.GetTaskRequest(task_id=f"{JOB}-3"))
    assert t.state == task_pb2.COMPLETED and t.history[-1].result_size == 4
    browser.get(f"http://{grid['console']}/#/task/{JOB}-3")
    shown = browser.wait(
        "const r = document.getElementById('result');"
        "if (!r || r.textContent.includes('Looking it up')) return null;"
        "const p = document.getElementById('result-bytes');"
        "return p ? ['bytes', p.textContent] : ['other', r.textContent];",
        what="the result")
    assert shown == ["bytes", "done"], shown
    browser.screenshot(os.path.join(shots, "task-result.png"))


def test_pause_button_pauses_a_waiting_job_and_resume_undoes_it(grid, jobs, browser,
                                                                 shots):
    def paused():
        q = jobs["scheduler"].ListQueues(scheduler_pb2.ListQueuesRequest(), timeout=10)
        return WAITING in q.paused_jobs

    assert not paused()
    browser.get(f"http://{grid['console']}/#/job/{WAITING}")
    browser.wait("return document.querySelector('#actions button[data-action=pause]');",
                 what="the pause button")
    browser.click("#actions button[data-action=pause]")
    assert wait_for(paused, 30), "the scheduler did not pause the job"
    browser.wait("const b = document.querySelector('#job-state .badge');"
                 "return b && b.textContent === 'PAUSED';", what="PAUSED on the page")
    browser.screenshot(os.path.join(shots, "job-paused.png"))
    browser.click("#actions button[data-action=resume]")
    assert wait_for(lambda: not paused(), 30), "the scheduler did not resume the job"


def test_workers_page_shows_the_queues_and_a_connected_worker(grid, jobs, browser,
                                                              shots):
    w = Worker(grid["scheduler"], lambda ctx: Success(b""), slots=4,
               worker_id="console-test-worker-2", labels=["gpu"],
               affinity_keys=["curve=USD"])
    runner = threading.Thread(target=w.run)
    runner.start()
    try:
        def listed():
            r = jobs["scheduler"].ListWorkers(scheduler_pb2.ListWorkersRequest(),
                                              timeout=10)
            return any(x.worker_id == "console-test-worker-2" for x in r.workers)
        assert wait_for(listed, 30)
        q = jobs["scheduler"].ListQueues(scheduler_pb2.ListQueuesRequest(), timeout=10)
        browser.get(f"http://{grid['console']}/#/workers")
        rows = browser.wait("return document.querySelectorAll('#queues tbody tr').length;",
                            what="the queue table")
        assert rows == len(q.queues)
        text = browser.wait(
            "const t = document.querySelector('#workers tbody');"
            "return t && t.textContent.includes('console-test-worker-2') ? t.textContent"
            " : null;", what="the worker's row")
        assert "gpu" in text and "curve=USD" in text
        browser.screenshot(os.path.join(shots, "workers.png"))
    finally:
        w.stop(grace=2)
        runner.join(timeout=30)


def http(grid, path, body=None, headers=None):
    """(status, body) of one request to the console."""
    req = urllib.request.Request(f"http://{grid['console']}{path}", data=body,
                                 headers=headers or {},
                                 method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_the_api_refuses_bad_input_with_a_reason(grid, jobs):
    assert http(grid, "/api/jobs?page_size=abc")[0] == 400
    assert http(grid, "/api/jobs?page_size=100000")[0] == 400
    assert http(grid, "/api/job?id=" + "x" * 5000)[0] == 400
    assert http(grid, "/api/task?id=no-such-task")[0] == 404
    assert http(grid, "/api/tasks?job=risk-eod&state=SLEEPING")[0] == 400
    assert http(grid, "/no/such/page")[0] == 404
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    # Actions need the console's header (a cross-site form cannot send it).
    status, body = http(grid, "/api/control", b"action=pause&job=risk-waiting", form)
    assert status == 403 and b"X-Kwq-Console" in body
    console = dict(form, **{"X-Kwq-Console": "1"})
    assert http(grid, "/api/control", b"action=drop&job=risk-waiting", console)[0] == 400
    assert http(grid, "/api/control", b"action=pause", console)[0] == 400
    assert http(grid, "/api/control", b"action=pause&job=" + b"j" * 8000,
                console)[0] == 413
    # Nothing above paused anything.
    q = jobs["scheduler"].ListQueues(scheduler_pb2.ListQueuesRequest(), timeout=10)
    assert not q.paused_jobs


def test_live_streams_are_capped_and_freed(grid, jobs):
    opened, refused = [], 0
    try:
        for _ in range(24):
            try:
                res = urllib.request.urlopen(
                    f"http://{grid['console']}/api/live?job=risk-eod", timeout=10)
                assert res.readline().startswith(b"data: {")
                opened.append(res)
            except urllib.error.HTTPError as e:
                assert e.code == 503
                refused += 1
        assert refused > 0 and len(opened) <= 16
        # While live pages are open, the rest of the API still answers.
        assert http(grid, "/api/jobs")[0] == 200
    finally:
        for r in opened:
            r.close()
    # Closed streams are given back (the server notices at its next write).
    assert wait_for(lambda: http_live_ok(grid), 30)


def http_live_ok(grid):
    try:
        with urllib.request.urlopen(f"http://{grid['console']}/api/live?job=risk-eod",
                                    timeout=10) as res:
            return res.readline().startswith(b"data: {")
    except urllib.error.HTTPError:
        return False


def test_dead_letters_page_lists_the_failed_tasks_and_resubmits_one(grid, jobs, browser,
                                                                     shots):
    # Last in this file: the resubmitted task adds a task to JOB.
    browser.get(f"http://{grid['console']}/#/dlq/{JOB}")
    ids = browser.wait(
        "const r = [...document.querySelectorAll('#dlq tbody td:nth-child(2) a')]"
        ".map((a) => a.textContent); return r.length >= 2 ? r : null;",
        what="the dead letters of the job")
    assert sorted(ids) == [f"{JOB}-7", f"{JOB}-77"]
    assert "curve missing" in browser.script(
        "return document.querySelector('#dlq tbody').textContent;")
    browser.screenshot(os.path.join(shots, "dead-letters.png"))
    # The API refuses a resubmit without the console's header (another site's page).
    status, _ = http(grid, "/api/dlq/resubmit", body=f"task={JOB}-7".encode())
    assert status == 403
    browser.click(f"#dlq button[data-task='{JOB}-7']")
    new_id = browser.wait(
        "const a = document.querySelector('#dlq-msg a'); return a ? a.textContent : null;",
        what="the resubmitted task's id")
    assert re.fullmatch(rf"{JOB}-7\.r\d+", new_id), new_id
    old = jobs["tracker"].GetTask(tracker_pb2.GetTaskRequest(task_id=f"{JOB}-7"))

    def resubmitted():
        try:
            return jobs["tracker"].GetTask(tracker_pb2.GetTaskRequest(task_id=new_id),
                                           timeout=10)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
    t = wait_for(resubmitted, 30)
    assert t, "the scheduler did not take the resubmitted task"
    assert t.job_id == JOB and t.priority == old.priority
    assert dict(t.tags) == dict(old.tags)

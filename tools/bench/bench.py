#!/usr/bin/env python3
"""kwq side by side with the Kafka floor and with Celery, in one run, on the real broker.

Driven by tools/bench/run. Prints a table, then one JSON line. Each figure comes with its
correctness check; a run that fails its check reports the failure instead of a figure.
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
KWQCTL = os.path.join(ROOT, "bazel-out", "k8-opt", "bin", "tools", "kwqctl")
FLOOR = os.path.join(ROOT, "bazel-out", "k8-opt", "bin", "tools", "bench", "kafka_floor")
VENV_PY = os.path.join(HERE, ".venv", "bin", "python")
# Partitions per topic, kwq's grid and the floor alike. kwq's simulated grid runs one
# scheduler instance, which needs one partition per priority topic; more are for sharing
# the topics among instances, and cost CPU with 10 priorities (librdkafka has no
# incremental fetch sessions: every fetch lists every partition). One extra run shows kwq
# with the scheduler's default of 4.
PARTITIONS = 1
# Tasks each kwq worker queues beyond its slots, per slot (WorkerOptions.prefetch =
# slots): a slot that finishes a no-op task starts the next without a round trip to the
# scheduler. Celery here prefetches more (celery_app.py: worker_prefetch_multiplier=16,
# i.e. 16 per prefork process). One extra run shows kwq without prefetch.
PREFETCH_PER_SLOT = 1
# kwq's workers run the no-op tasks on their stream's thread (WorkerOptions.run_inline,
# `kwqctl simulate --inline`), the SDK's mode for tasks this short: no slot-thread wake-up
# per task. One extra run shows kwq with slot threads, the SDK's default.
INLINE = True
# The broker's JMX port (tools/bench/run starts it with one), for request counts.
JMX_PORT = 0


def proc_cpu_seconds(pid):
    """utime + stime of a live process (e.g. the broker), in seconds."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def jit_cpu_seconds(pid):
    """CPU of a JVM's JIT compiler threads (C1/C2 CompilerThread), in seconds: warm-up
    work that is not the steady cost of serving a request."""
    total = 0.0
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return 0.0
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                if "Compiler" not in f.read():
                    continue
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
    return total


KAFKA_LIBS = os.path.join(ROOT, "tools", "kafka", ".libs")


def broker_requests(jmx_port):
    """Requests the broker handled so far, by type (its JMX RequestsPerSec counters,
    read with Kafka's JmxTool), or None without JMX. Read between runs, outside the
    measured windows (a JVM start costs a second of CPU)."""
    if not jmx_port:
        return None
    url = "service:jmx:rmi:///jndi/rmi://127.0.0.1:%d/jmxrmi" % jmx_port
    try:
        p = subprocess.run(
            ["java", "-Xmx128m", "-XX:TieredStopAtLevel=1", "-cp", KAFKA_LIBS + "/*",
             "org.apache.kafka.tools.JmxTool", "--jmx-url", url,
             "--object-name", "kafka.network:type=RequestMetrics,name=RequestsPerSec,*",
             "--attributes", "Count", "--one-time", "true", "--report-format", "tsv"],
            capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    counts = {}
    # Not clients' requests: the broker's own to its controller (KRaft), and
    # FetchConsumer / FetchFollower, which are the Fetch count split by who fetched.
    internal = {"BrokerHeartbeat", "BrokerRegistration", "ControllerRegistration",
                "FetchConsumer", "FetchFollower", "Vote", "BeginQuorumEpoch",
                "EndQuorumEpoch", "DescribeQuorum", "AllocateProducerIds"}
    for line in p.stdout.splitlines():
        # "kafka.network:type=RequestMetrics,name=RequestsPerSec,request=Produce,
        #  version=11:Count<TAB>1234"
        m = re.search(r"request=([A-Za-z]+)[^\t]*:Count\t(\d+)", line)
        if m and m.group(1) not in internal:
            counts[m.group(1)] = counts.get(m.group(1), 0) + int(m.group(2))
    return counts or None


def request_delta(before, after, tasks):
    """Requests per task by type between two broker_requests readings."""
    if not before or not after:
        return None
    per = {k: (after.get(k, 0) - before.get(k, 0)) / tasks for k in after}
    per = {k: v for k, v in per.items() if v > 0}
    return dict(sorted(per.items(), key=lambda kv: -kv[1]))


def session_pids(sid):
    """Processes of session `sid` (a process started with start_new_session)."""
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[3]) == sid:  # session id
                    pids.append(int(d))
            except OSError:
                pass
    return pids


def proc_hwm_bytes(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def timed(cmd, env=None, timeout=900):
    """Runs cmd under /usr/bin/time; returns (stdout, peak_rss_bytes, rc, stderr). CPU
    comes from the programs themselves (their measured window), not from here."""
    full = ["/usr/bin/time", "-f", "__TIME__ %M"] + cmd
    p = subprocess.run(full, capture_output=True, text=True, env=env, timeout=timeout)
    m = re.search(r"__TIME__ (\d+)", p.stderr)
    rss = int(m.group(1)) * 1024 if m else 0
    return p.stdout, rss, p.returncode, p.stderr


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_broker_quiet(broker_pid, limit_s=30.0):
    """Waits (bounded) until the broker uses under 5% of a core over half a second, so
    that one run's clean-up (deleting its topics) is not measured in the next."""
    deadline = time.time() + limit_s
    while time.time() < deadline:
        c0 = proc_cpu_seconds(broker_pid)
        time.sleep(0.5)  # a sampling interval, not a wait for an event
        if proc_cpu_seconds(broker_pid) - c0 < 0.025:
            return


def run_kwq(boot, broker_pid, tasks, workers, slots, rate=0.0, partitions=PARTITIONS,
            prefetch=None, inline=INLINE):
    # The request counts first: a JMX query makes the broker compile and work for a
    # while after it, which must not fall into the measured window.
    req0 = broker_requests(JMX_PORT)
    wait_broker_quiet(broker_pid)
    if prefetch is None:
        prefetch = PREFETCH_PER_SLOT * slots
    cmd = [KWQCTL, "simulate", "--tasks", str(tasks), "--workers", str(workers),
           "--slots", str(slots), "--bootstrap-servers", boot, "-o", "json",
           "--priorities", "10", "--cpu-of-pid", str(broker_pid),
           "--partitions", str(partitions), "--prefetch", str(prefetch),
           "--payload-bytes", "128"]
    if rate:
        cmd += ["--rate", str(rate)]
    if inline:
        cmd += ["--inline"]
    jit0 = jit_cpu_seconds(broker_pid)
    out, rss, rc, err = timed(cmd)
    jit = jit_cpu_seconds(broker_pid) - jit0
    requests = request_delta(req0, broker_requests(JMX_PORT), tasks)
    j = last_json(out)
    res = {"name": "kwq %dx%d" % (workers, slots) + (" @%g/s" % rate if rate else "") +
           (" %d partitions" % partitions if partitions != PARTITIONS else "") +
           (" no prefetch" if prefetch == 0 else "") +
           ("" if inline else " slot threads"),
           "tasks": tasks}
    if j is None:
        res["error"] = "no JSON from kwqctl simulate (exit %d): %s" % (rc, err[-300:])
        return res
    ok = (j["completed"] == tasks and j["failed"] == 0 and j["duplicates"] == 0 and
          j["tracker_completed"] == tasks and j.get("priority_inversions", 0) == 0)
    if not ok:
        res["error"] = "correctness check failed: %s" % json.dumps(j)
        return res
    res.update(tasks_per_second=j["tasks_per_second"], p50=j["submit_to_start_p50_ms"],
               p99=j["submit_to_start_p99_ms"], p999=j.get("submit_to_start_p999_ms"),
               inversions=j.get("priority_inversions", 0),
               # CPU in the measured window (simulate reports its own and the broker's;
               # set-up and tear-down, e.g. creating and deleting the grid's topics, are
               # left out: they cost the broker 0.4-0.8 s per run).
               # kwq's: the process less the harness's own threads (the load
               # generator and the main thread polling the tracker).
               cpu_per_task_ms={"kwq (scheduler+tracker+workers)":
                                1000 * (j["cpu_seconds"] - j.get("harness_cpu_seconds", 0)) / tasks,
                                "harness (load generator)":
                                1000 * j.get("harness_cpu_seconds", 0) / tasks,
                                "kafka broker": 1000 * j["cpu_seconds_of_pid"] / tasks},
               broker_cpu=broker_split(j["cpu_seconds_of_pid"], jit, tasks),
               requests_per_task=requests,
               cpu_us_per_task_by_thread={k: round(1e6 * v / tasks, 1) for k, v in
                                          j.get("cpu_seconds_by_thread", {}).items()
                                          if v > 0},
               peak_rss_mib={"kwq": rss / 2**20})
    return res


def broker_split(broker_seconds, jit_seconds, tasks):
    """The broker's CPU per task in µs, its JIT compilers' apart: they are warm-up (a
    JVM still compiling), not the steady cost. jit_seconds spans the whole run (set-up
    included), so the steady figure is a slight underestimate when the JIT is busy."""
    return {"steady_us_per_task": 1e6 * max(0.0, broker_seconds - jit_seconds) / tasks,
            "jit_us_per_task": 1e6 * jit_seconds / tasks}


def run_floor(boot, broker_pid, tasks, rate=0.0, paced_as_kwq=False):
    """paced_as_kwq: at `rate` in Submits of 1,000 tasks over kwq's 10 priority topics,
    lingering as kwq's producers do: the floor's Kafka work at kwq's throughput and
    with kwq's topic layout (what the broker costs per task there)."""
    req0 = broker_requests(JMX_PORT)  # before the quiet wait, as in run_kwq
    wait_broker_quiet(broker_pid)
    cmd = [FLOOR, "--bootstrap_servers=" + boot, "--tasks=%d" % tasks,
           "--cpu_of_pid=%d" % broker_pid, "--partitions=%d" % PARTITIONS]
    if rate:
        cmd.append("--rate=%g" % rate)
    if paced_as_kwq:
        cmd += ["--submit_batch=1000", "--task_topics=10"]
    jit0 = jit_cpu_seconds(broker_pid)
    out, rss, rc, err = timed(cmd)
    jit = jit_cpu_seconds(broker_pid) - jit0
    requests = request_delta(req0, broker_requests(JMX_PORT), tasks)
    j = last_json(out)
    res = {"name": ("kafka floor 10 topics @%.0f/s" % rate if paced_as_kwq else
                    "kafka floor" + (" @%g/s" % rate if rate else "")),
           "tasks": tasks}
    if j is None or not j.get("correct"):
        res["error"] = "floor failed its check: %s %s" % (j, err[-300:])
        return res
    if rate and not paced_as_kwq:
        # The Kafka part of kwq's idle submit-to-start: produce to consume.
        res.update(p50=j["submit_to_consume_p50_ms"], p99=j["submit_to_consume_p99_ms"],
                   p999=j["submit_to_consume_p999_ms"])
    res.update(tasks_per_second=j["tasks_per_second"],
               cpu_per_task_ms={"floor": 1000 * j["cpu_seconds"] / tasks,
                                "kafka broker": 1000 * j["cpu_seconds_of_pid"] / tasks},
               broker_cpu=broker_split(j["cpu_seconds_of_pid"], jit, tasks),
               requests_per_task=requests,
               cpu_us_per_task_by_thread={k: round(1e6 * v / tasks, 1) for k, v in
                                          j.get("cpu_seconds_by_thread", {}).items()
                                          if v > 0},
               peak_rss_mib={"floor": rss / 2**20})
    return res


def run_celery(tasks, concurrency):
    port = free_port()
    url = "redis://127.0.0.1:%d/0" % port
    env = dict(os.environ, KWQ_BENCH_REDIS=url, PYTHONPATH=HERE)
    redis_p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
    res = {"name": "celery+redis prefork x%d" % concurrency, "tasks": tasks}
    try:
        import redis  # noqa: E402 (from the bench venv)
        r = redis.Redis.from_url(url)
        for _ in range(200):
            try:
                r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)  # redis-server starting
        worker = subprocess.Popen(
            [VENV_PY, "-m", "celery", "-A", "celery_app", "worker", "--pool=prefork", "-c",
             str(concurrency), "--loglevel=WARNING", "--without-gossip", "--without-mingle",
             "--without-heartbeat"],
            cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        sys.path.insert(0, HERE)
        os.environ["KWQ_BENCH_REDIS"] = url
        import importlib
        import celery_app
        importlib.reload(celery_app)
        payload = "x" * 128
        # A warm-up task first (the pool starting is not the throughput; kwq and the
        # floor warm up the same way), then the count starts from zero.
        celery_app.noop.apply_async(args=("warm-up", payload))
        warm_deadline = time.time() + 60
        while r.hlen("kwqbench:runs") < 1 and time.time() < warm_deadline:
            time.sleep(0.01)  # polling Redis for the warm-up task's run
        if r.hlen("kwqbench:runs") < 1:
            res["error"] = "the warm-up task did not run within 60 s"
            return res
        r.delete("kwqbench:runs")
        t0 = time.time()
        c0 = os.times()
        for i in range(tasks):
            celery_app.noop.apply_async(args=("c%d" % i, payload))
        deadline = t0 + 900
        while r.hlen("kwqbench:runs") < tasks and time.time() < deadline:
            time.sleep(0.05)  # polling Redis for the count of tasks run
        secs = time.time() - t0
        c1 = os.times()
        runs = r.hvals("kwqbench:runs")
        once = len(runs) == tasks and all(int(v) == 1 for v in runs)
        if not once:
            res["error"] = "celery ran %d distinct tasks of %d (%d more than once)" % (
                len(runs), tasks, sum(1 for v in runs if int(v) > 1))
            return res
        res.update(tasks_per_second=tasks / secs,
                   cpu_per_task_ms={"submitter": 1000 * ((c1.user - c0.user) +
                                                         (c1.system - c0.system)) / tasks})
    finally:
        if worker is not None:
            # CPU and memory of the worker's processes (main + pool), read before they end.
            cpu, hwm = 0.0, 0
            for pid in session_pids(worker.pid):
                cpu += proc_cpu_seconds(pid)
                hwm = max(hwm, proc_hwm_bytes(pid))
            if "tasks_per_second" in res:
                res["cpu_per_task_ms"]["celery workers"] = 1000 * cpu / tasks
                res["peak_rss_mib"] = {"celery worker (largest process)": hwm / 2**20}
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        redis_p.terminate()
        redis_p.wait(timeout=30)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller runs (about 10 minutes)")
    ap.add_argument("--json", action="store_true", help="end with one JSON line")
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--broker-pid", type=int, required=True)
    ap.add_argument("--jmx-port", type=int, default=0,
                    help="the broker's JMX port: Kafka requests per task by type")
    a = ap.parse_args()
    global JMX_PORT
    JMX_PORT = a.jmx_port
    n = 50000 if a.quick else 200000
    results = []
    # A fresh broker's JVM is cold: measured, the first floor run after a broker start
    # used 8x the broker CPU per task of later ones. Warm it up first (not reported).
    # The same for kwq's paths through the broker (many partitions, groups, commits with
    # metadata): its first run on a fresh broker used 2-3x the broker CPU per task.
    warm = run_floor(a.bootstrap, a.broker_pid, n // 2)
    print("warm-up floor run: %s tasks/s" % warm.get("tasks_per_second", warm.get("error")),
          file=sys.stderr)
    # Two kwq warm-up runs: measured on a fresh broker, the broker's CPU per kwq task
    # still fell by half between the first and the third run.
    # Then more (up to 4 in all) while the broker's JIT compilers still burn over a tenth
    # of its CPU: their work is warm-up, and reported apart anyway (broker_jit_cpu_...).
    for i in range(4):
        warm = run_kwq(a.bootstrap, a.broker_pid, n // 2, 8, 16)
        bc = warm.get("broker_cpu", {})
        jit, steady = bc.get("jit_us_per_task", 0), bc.get("steady_us_per_task", 0)
        print("warm-up kwq run: %s tasks/s, broker %.1f us/task + JIT %.1f" % (
            warm.get("tasks_per_second", warm.get("error")), steady, jit), file=sys.stderr)
        if i >= 1 and jit <= 0.1 * (steady + jit):
            break
    # Interleaved: floor, kwq, Celery, floor, kwq, Celery; the best of each pair is
    # reported (this VM's speed drifts by tens of percent within minutes: the ratios
    # compare runs a few seconds apart, each contender's best).
    floor_runs, kwq_runs, celery_runs = [], [], []
    for _ in range(2):
        # The floor runs 200,000 tasks even with --quick: it does them in 1-2 s,
        # and a shorter run is mostly start-up.
        floor_runs.append(run_floor(a.bootstrap, a.broker_pid, max(n, 200000)))
        kwq_runs.append(run_kwq(a.bootstrap, a.broker_pid, n, 8, 16))
        wait_broker_quiet(a.broker_pid)
        celery_runs.append(run_celery(5000 if a.quick else 20000, 8))

    def best(runs):
        good = [r for r in runs if "error" not in r]
        return max(good, key=lambda r: r["tasks_per_second"]) if good else runs[0]

    results += [best(floor_runs), best(kwq_runs)]
    # The floor again at the rate kwq reached and with its 10 priority topics: the
    # broker's cost per task depends on both (its fixed cost per second spreads over
    # fewer tasks, librdkafka sends one partition per produce request), so this is
    # the figure kwq's broker cost compares with like for like.
    floor_at_kwq = (run_floor(a.bootstrap, a.broker_pid, n,
                              rate=results[1]["tasks_per_second"], paced_as_kwq=True)
                    if "error" not in results[1] else None)
    if floor_at_kwq:
        results.append(floor_at_kwq)
    results.append(run_kwq(a.bootstrap, a.broker_pid, n, 8, 16, inline=False))
    results.append(run_kwq(a.bootstrap, a.broker_pid, n, 8, 16, prefetch=0))
    results.append(run_kwq(a.bootstrap, a.broker_pid, n, 8, 16, partitions=4))
    results.append(run_kwq(a.bootstrap, a.broker_pid, 2000 if a.quick else 10000, 1, 1))
    results.append(run_kwq(a.bootstrap, a.broker_pid, n, 64, 2))
    # Idle latency: 30 s at 20/s even with --quick (600 samples; with 200, the
    # p99 was the second-slowest task and swung between 2 and 14 ms from run to run).
    lat = [run_kwq(a.bootstrap, a.broker_pid, r * (30 if r == 20 or not a.quick else 10), 8,
                   16, rate=r)
           for r in (20, 100)]
    results += lat
    floor_lat = run_floor(a.bootstrap, a.broker_pid, 20 * 30, rate=20)
    results.append(floor_lat)
    celery = best(celery_runs)
    results.append(celery)

    print("%-28s %9s %12s %9s %9s %10s  %s" % ("run", "tasks", "tasks/s", "p50 ms",
                                                 "p99 ms", "p99.9 ms", "cpu ms/task; peak RSS"))
    for r in results:
        if "error" in r:
            print("%-28s %9d  FAILED: %s" % (r["name"], r["tasks"], r["error"]))
            continue
        fmt = lambda v: "-" if v is None else "%.2f" % v  # noqa: E731
        print("%-28s %9d %12.0f %9s %9s %10s  %s; %s" % (
            r["name"], r["tasks"], r["tasks_per_second"], fmt(r.get("p50")),
            fmt(r.get("p99")), fmt(r.get("p999")),
            ", ".join("%s %.3f" % kv for kv in r["cpu_per_task_ms"].items()),
            ", ".join("%s %.0f MiB" % kv for kv in r.get("peak_rss_mib", {}).items())))
        if r.get("broker_cpu") or r.get("requests_per_task"):
            bc = r.get("broker_cpu", {})
            req = r.get("requests_per_task") or {}
            print("%-28s broker %.1f us/task steady + %.1f JIT; Kafka requests/task %s%s" % (
                "", bc.get("steady_us_per_task", 0), bc.get("jit_us_per_task", 0),
                "%.4f" % sum(req.values()) if req else "-",
                " (" + ", ".join("%s %.4f" % kv for kv in list(req.items())[:5]) + ")"
                if req else ""))
    kwq, floor = results[1], results[0]
    ok = lambda r: "error" not in r  # noqa: E731
    summary = {
        "kwq_tasks_per_second": kwq.get("tasks_per_second") if ok(kwq) else None,
        "kafka_floor_tasks_per_second": floor.get("tasks_per_second") if ok(floor) else None,
        "celery_tasks_per_second": celery.get("tasks_per_second") if ok(celery) else None,
        "submit_to_start_p50_ms": lat[0].get("p50") if ok(lat[0]) else None,
        "submit_to_start_p99_ms": lat[0].get("p99") if ok(lat[0]) else None,
        "submit_to_start_p999_ms": lat[0].get("p999") if ok(lat[0]) else None,
        # The same for the Kafka floor at the same rate: produce to consume alone.
        "kafka_floor_submit_to_consume_p50_ms": floor_lat.get("p50"),
        "kafka_floor_submit_to_consume_p99_ms": floor_lat.get("p99"),
        "priority_inversions": sum(r.get("inversions", 0) for r in results),
        "failures": [r["name"] for r in results if not ok(r)],
    }
    # CPU per task, every process of the run (the broker's included): what the two
    # throughput figures cost on a machine where everything shares the cores.
    for key, r in (("kwq_cpu_ms_per_task", kwq), ("kafka_floor_cpu_ms_per_task", floor)):
        summary[key] = sum(r["cpu_per_task_ms"].values()) if ok(r) else None
    # Issue 21's figures: kwq's own processes, the broker in steady state (its JIT
    # compilers apart) for kwq and for the floor, and Kafka requests per task.
    summary["kwq_cpu_us_per_task"] = (
        1000 * kwq["cpu_per_task_ms"]["kwq (scheduler+tracker+workers)"] if ok(kwq) else None)
    summary["kwq_cpu_us_per_task_by_thread"] = (
        kwq.get("cpu_us_per_task_by_thread") if ok(kwq) else None)
    summary["broker_cpu_us_per_task"] = (
        kwq["broker_cpu"]["steady_us_per_task"] if ok(kwq) else None)
    summary["broker_jit_cpu_us_per_task"] = (
        kwq["broker_cpu"]["jit_us_per_task"] if ok(kwq) else None)
    summary["floor_broker_cpu_us_per_task"] = (
        floor["broker_cpu"]["steady_us_per_task"] if ok(floor) else None)
    summary["kafka_requests_per_task"] = (
        sum(kwq["requests_per_task"].values())
        if ok(kwq) and kwq.get("requests_per_task") else None)
    summary["kafka_requests_per_task_by_type"] = (
        {k: round(v, 4) for k, v in kwq["requests_per_task"].items()}
        if ok(kwq) and kwq.get("requests_per_task") else None)
    summary["floor_kafka_requests_per_task"] = (
        sum(floor["requests_per_task"].values())
        if ok(floor) and floor.get("requests_per_task") else None)
    paced = floor_at_kwq if floor_at_kwq and ok(floor_at_kwq) else None
    summary["floor_at_kwq_rate_broker_cpu_us_per_task"] = (
        paced["broker_cpu"]["steady_us_per_task"] if paced else None)
    summary["floor_at_kwq_rate_cpu_us_per_task"] = (
        1000 * paced["cpu_per_task_ms"]["floor"] if paced else None)
    summary["floor_at_kwq_rate_kafka_requests_per_task"] = (
        sum(paced["requests_per_task"].values())
        if paced and paced.get("requests_per_task") else None)
    summary["ratio_vs_floor"] = (summary["kwq_tasks_per_second"] /
                                 summary["kafka_floor_tasks_per_second"]
                                 if ok(kwq) and ok(floor) else None)
    summary["ratio_vs_celery"] = (summary["kwq_tasks_per_second"] /
                                  summary["celery_tasks_per_second"]
                                  if ok(kwq) and ok(celery) else None)
    for k, v in summary.items():
        if isinstance(v, float):
            summary[k] = round(v, 4)
    if a.json:
        print(json.dumps(summary))
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())

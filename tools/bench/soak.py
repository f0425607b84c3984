#!/usr/bin/env python3
"""kwq's soak: one job of N tasks end to end on a real broker, as deployed.

The broker (tools/kafka/start.sh), --schedulers kwq_scheduler processes, a
kwq_tracker and --workers simulated_worker processes (split over the
schedulers) all run as separate processes. A submitter sends the job in batches
of 1,000 tasks with ids soak-<n> (128-byte payloads, three tags), never more
than --max-outstanding ahead of the completions (backpressure), retrying a
batch with the same ids until it is acknowledged. event_tally follows the
events topic on its own and counts distinct completed ids.

Every --sample-s seconds a sample: completions/s, submit rate, queue depth and
oldest age per priority and consumer lag (ListQueues of every scheduler), RSS
and CPU of every process, broker and tracker disk, the tracker's ingest lag
(records in the events topic it has not applied), and the latency of
GetJobSummary, ListTasks (first page and a deep page) and GetTask of random
tasks. Halfway it kills -9 the tracker and one scheduler and restarts them, and
measures the tracker's time from restart to a correct answer.

At the end it checks every task completed exactly once (the tracker's summary
against event_tally), writes samples.json, charts (PNG, matplotlib) and, with
--json, one JSON line. Exit status 1 when a task was lost or double-counted.
See tools/bench/README.md.
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "python"))

import grpc  # noqa: E402
import kwq_client._gen  # noqa: E402,F401  (puts tools/python/gen on the path)
from grid_processes import Kafka, Proc, log_to  # noqa: E402
from kwq.v1 import (  # noqa: E402
    scheduler_pb2, scheduler_pb2_grpc, tracker_pb2, tracker_pb2_grpc)

log = log_to("soak")
JOB = "soak"
PAGE = 100


def pct(values, q):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def proc_stat(pid):
    """(rss_bytes, cpu_seconds) of a live process, or (None, None)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024, cpu
    except (OSError, IndexError, ValueError):
        pass
    return None, None


def dir_bytes(path):
    total = 0
    for d, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(d, name)).st_blocks * 512
            except OSError:
                pass
    return total


class Tally:
    """event_tally's latest line (it prints one every second)."""

    def __init__(self, binary, bootstrap, topic, tasks, out_dir):
        self.err = open(os.path.join(out_dir, "event_tally.log"), "ab")
        self.p = subprocess.Popen(
            [binary, f"--bootstrap_servers={bootstrap}", f"--topic={topic}",
             "--id_prefix=soak-", f"--tasks={tasks}", "--report_ms=1000"],
            stdout=subprocess.PIPE, stderr=self.err, text=True)
        self.last = {"events": 0, "end": 0, "completed": 0, "duplicates": 0,
                     "unexpected": 0}
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            try:
                self.last = json.loads(line)
            except ValueError:
                pass

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


class Soak:
    def __init__(self, args, work, bins):
        self.args, self.work, self.bins = args, work, bins
        self.prefix = f"soak{os.getpid()}"
        self.schedulers = {}  # name -> [Proc, address]
        self.workers = []
        self.acked = 0
        self.ingest_lag = 0  # events the tracker has not applied yet
        self.submit_retries = 0
        self.stop_submit = threading.Event()
        self.samples = []
        self.events = []  # (time, what)
        self.interrupted = False  # SIGTERM/SIGINT: stop and report what ran
        self.stalled_s = 0.0  # set when no task completed for --stall-s

    # --- processes -------------------------------------------------------
    def start_scheduler(self, name, port=0):
        p = Proc(name, [
            os.path.join(self.bins, "server", "kwq_scheduler"),
            f"--listen=127.0.0.1:{port}",
            f"--bootstrap_servers={self.kafka.bootstrap}",
            f"--topic_prefix={self.prefix}", f"--partitions={self.args.partitions}",
            f"--scheduler_id={name}", "--kafka_wait_ms=60000",
            "--metrics_listen="], self.work).start()
        previous = self.schedulers.get(name, [None, f"127.0.0.1:{port}"])[1]
        self.schedulers[name] = [p, previous]  # killed on stop even if it hangs
        address = p.wait_line(r"listening on (\S+)", 120).group(1)
        self.schedulers[name] = [p, address]
        return address

    def start_tracker(self):
        self.tracker = Proc("tracker", [
            os.path.join(self.bins, "tracker", "kwq_tracker"),
            f"--listen=127.0.0.1:{getattr(self, 'tracker_port', 0)}",
            f"--bootstrap_servers={self.kafka.bootstrap}",
            f"--topic_prefix={self.prefix}",
            f"--db={os.path.join(self.work, 'tracker-db')}",
            "--kafka_wait_ms=60000", *self.args.tracker_arg], self.work).start()
        address = self.tracker.wait_line(r"listening on (\S+)", 300).group(1)
        self.tracker_port = int(address.rsplit(":", 1)[1])
        self.tracker_stub = tracker_pb2_grpc.TrackerStub(grpc.insecure_channel(address))

    def start_worker(self, i, scheduler):
        p = Proc(f"w{i}", [
            os.path.join(self.bins, "worker_sdk", "examples", "simulated_worker"),
            f"--scheduler={self.schedulers[scheduler][1]}", f"--worker_id=soak-w{i}",
            f"--slots={self.args.slots}", f"--prefetch={self.args.slots}",
            f"--duration_ms={self.args.task_ms}", "--jitter_ms=0"], self.work).start()
        self.workers.append(p)

    def processes(self):
        out = {"broker": self.kafka.pid()}
        out["tracker"] = self.tracker.p.pid
        for name, (p, _) in self.schedulers.items():
            out[name] = p.p.pid
        for p in self.workers:
            out[p.name] = p.p.pid
        out["event_tally"] = self.tally.p.pid
        return out

    # --- submit ----------------------------------------------------------
    def submit_loop(self):
        names = sorted(self.schedulers)
        stubs = {}
        payload = b"x" * 128
        n, batch = self.args.tasks, self.args.batch
        b, turn = 0, 0
        while b < n and not self.stop_submit.is_set():
            # Backpressure: never more than max_outstanding ahead of the
            # completions the events topic shows, and never more than
            # max_ingest_lag events ahead of the tracker (the grid runs at the
            # pace of its slowest part, the tracker included; while the
            # tracker is down, submits go on).
            while (not self.stop_submit.is_set() and
                   (self.acked - self.tally.last["completed"] > self.args.max_outstanding
                    or self.ingest_lag > self.args.max_ingest_lag)):
                time.sleep(0.05)
            name = names[turn % len(names)]
            address = self.schedulers[name][1]
            if address not in stubs:
                stubs[address] = scheduler_pb2_grpc.SchedulerStub(
                    grpc.insecure_channel(address))
            req = scheduler_pb2.SubmitRequest()
            for i in range(b, min(n, b + batch)):
                t = req.tasks.add(id=f"soak-{i}", job_id=JOB, priority=i % 3,
                                  payload=payload)
                t.tags["currency"] = ("USD", "EUR", "GBP", "JPY")[i % 4]
                t.tags["risk"] = ("CR01", "DV01")[i % 2]
                t.tags["book"] = f"b{i % 16}"
            turn += 1  # the next batch (or this one again) goes to the next instance
            try:
                stubs[address].Submit(req, timeout=30)
            except grpc.RpcError as e:
                self.submit_retries += 1
                if self.submit_retries % 20 == 1:
                    log(f"submit to {name} failed, retrying on the next instance "
                        f"({e.code().name}: {(e.details() or '')[:120]})")
                time.sleep(0.2)
                continue  # the same ids again (dedup makes it safe)
            self.acked = min(n, b + batch)
            b += batch

    def watch_ingest_lag(self):
        """Keeps self.ingest_lag (events the tracker has not applied) fresh;
        while the tracker does not answer, it counts as no lag."""
        while not self.stop_submit.is_set():
            try:
                thr = self.tracker_stub.GetThroughput(
                    tracker_pb2.GetThroughputRequest(bucket_seconds=10, buckets=1),
                    timeout=2)
                self.ingest_lag = max(0, self.tally.last["end"] - thr.total_events)
            except grpc.RpcError:
                self.ingest_lag = 0
            self.stop_submit.wait(0.5)

    # --- queries ---------------------------------------------------------
    def timed(self, fn):
        t = time.perf_counter()
        try:
            r = fn()
        except grpc.RpcError:
            return None, None
        return r, (time.perf_counter() - t) * 1000.0

    def summary(self, timeout=10):
        return self.tracker_stub.GetJobSummary(
            tracker_pb2.GetJobSummaryRequest(job_id=JOB), timeout=timeout)

    def sample(self, last):
        now = time.time()
        s = {"t": now - self.t0, "acked": self.acked}
        tl = dict(self.tally.last)
        s["tally_completed"] = tl["completed"]
        s["events_end"] = tl["end"]
        summ, s["ms_summary"] = self.timed(self.summary)
        s["tracker_completed"] = summ.counts.completed if summ else None
        _, s["ms_list_first"] = self.timed(lambda: self.tracker_stub.ListTasks(
            tracker_pb2.ListTasksRequest(job_id=JOB, page_size=PAGE), timeout=10))
        deep = f"soak-{max(0, self.acked // 2)}"
        _, s["ms_list_deep"] = self.timed(lambda: self.tracker_stub.ListTasks(
            tracker_pb2.ListTasksRequest(job_id=JOB, page_size=PAGE, page_token=deep),
            timeout=10))
        s["ms_get_task"] = []
        for _ in range(5):
            tid = f"soak-{random.randrange(max(1, self.acked))}"
            _, ms = self.timed(lambda: self.tracker_stub.GetTask(
                tracker_pb2.GetTaskRequest(task_id=tid), timeout=10))
            if ms is not None:
                s["ms_get_task"].append(ms)
        thr, _ = self.timed(lambda: self.tracker_stub.GetThroughput(
            tracker_pb2.GetThroughputRequest(bucket_seconds=10, buckets=1), timeout=10))
        s["ingest_lag_records"] = (max(0, tl["end"] - thr.total_events)
                                   if thr is not None else None)
        depth, oldest, lag = {}, {}, 0
        for name, (_, address) in self.schedulers.items():
            stub = scheduler_pb2_grpc.SchedulerStub(grpc.insecure_channel(address))
            try:
                q = stub.ListQueues(scheduler_pb2.ListQueuesRequest(), timeout=5)
            except grpc.RpcError:
                continue
            lag += q.consumer_lag
            for qi in q.queues:
                depth[qi.priority] = depth.get(qi.priority, 0) + qi.depth
                oldest[qi.priority] = max(oldest.get(qi.priority, 0.0),
                                          qi.oldest_age_seconds)
        s["queue_depth"], s["oldest_age_s"], s["consumer_lag"] = depth, oldest, lag
        s["rss"], s["cpu"] = {}, {}
        for name, pid in self.processes().items():
            rss, cpu = proc_stat(pid)
            s["rss"][name], s["cpu"][name] = rss, cpu
        s["broker_disk"] = dir_bytes(self.kafka.state)
        s["tracker_disk"] = dir_bytes(os.path.join(self.work, "tracker-db"))
        if last:
            dt = s["t"] - last["t"]
            s["completions_per_s"] = (s["tally_completed"] - last["tally_completed"]) / dt
            s["submits_per_s"] = (s["acked"] - last["acked"]) / dt
            s["cpu_percent"] = {
                k: 100.0 * (v - last["cpu"].get(k)) / dt
                for k, v in s["cpu"].items()
                if v is not None and last["cpu"].get(k) is not None
                and v >= last["cpu"][k]}
        self.samples.append(s)
        return s

    # --- faults ----------------------------------------------------------
    def restart_tracker(self):
        """Kills the tracker -9 and restarts it. Returns (restart, catch_up):
        seconds until it answers with at least the count it answered just
        before the kill (the restart's own cost: reopening its model, no
        replay), and until its count reaches what the events topic held at
        the kill (that plus the backlog it had, at most --max-ingest-lag)."""
        try:
            answered = self.summary(timeout=5).counts.completed
        except grpc.RpcError:
            answered = 0
        before = self.tally.last["completed"]
        self.tracker.send(signal.SIGKILL)
        self.tracker.p.wait()
        self.events.append((time.time() - self.t0, "tracker killed -9"))
        t = time.time()
        self.start_tracker()
        restart = catch_up = None
        while time.time() - t < 600:
            try:
                n = self.summary(timeout=2).counts.completed
                if restart is None and n >= answered:
                    restart = time.time() - t
                if n >= before:
                    catch_up = time.time() - t
                    break
            except grpc.RpcError:
                pass
            time.sleep(0.05)  # polling the restarted tracker
        if restart is None:
            restart = catch_up
        self.events.append((time.time() - self.t0,
                            f"tracker answering as before after {restart:.1f} s, "
                            f"caught up after {catch_up:.1f} s"
                            if catch_up is not None else "tracker did not catch up"))
        log(f"tracker killed -9 and restarted: answering as before after "
            f"{restart} s, caught up with the topic after {catch_up} s")
        return restart, catch_up

    def restart_scheduler(self, name):
        p, address = self.schedulers[name]
        p.send(signal.SIGKILL)
        p.p.wait()
        self.events.append((time.time() - self.t0, f"{name} killed -9"))
        for attempt in (1, 2):
            try:
                self.start_scheduler(name, int(address.rsplit(":", 1)[1]))
                break
            except RuntimeError as e:  # recorded: a restart that fails is a finding
                self.events.append((time.time() - self.t0,
                                    f"{name} restart {attempt} failed: {e}"))
                log(f"{name} restart {attempt} failed: {e}")
                self.schedulers[name][0].send(signal.SIGKILL)
        log(f"{name} killed -9 and restarted (pid {self.schedulers[name][0].p.pid})")

    # --- the run ---------------------------------------------------------
    def run(self):
        a = self.args
        self.kafka = Kafka(False, self.work, heap=a.broker_heap or None).start()
        log(f"kafka at {self.kafka.bootstrap}")
        for i in range(a.schedulers):
            self.start_scheduler(f"s{i}")
        self.start_tracker()
        for i in range(a.workers):
            self.start_worker(i, f"s{i % a.schedulers}")
        self.tally = Tally(os.path.join(self.bins, "tools", "bench", "event_tally"),
                           self.kafka.bootstrap, f"{self.prefix}.events", a.tasks,
                           self.work)
        log(f"{a.schedulers} schedulers, {a.workers} workers x {a.slots} slots, "
            f"tracker; {a.tasks:,} tasks")
        self.t0 = time.time()
        submitter = threading.Thread(target=self.submit_loop, daemon=True)
        submitter.start()
        threading.Thread(target=self.watch_ingest_lag, daemon=True).start()
        last, faults_done, restart_s, catch_up_s = None, False, None, None
        at10 = at100 = None
        deadline = self.t0 + a.timeout_s
        last_done, last_progress = 0, time.time()
        while time.time() < deadline and not self.interrupted:
            # Every sample_s; after a long step (the tracker restart) the next
            # sample is sample_s later, not a burst catching up.
            next_at = (self.samples[-1]["t"] + self.t0 + a.sample_s
                       if self.samples else self.t0 + a.sample_s)
            time.sleep(max(0.0, next_at - time.time()))
            if self.interrupted:
                break
            last = self.sample(last)
            done = last["tally_completed"]
            log(f"{done:,}/{a.tasks:,} completed "
                f"({last.get('completions_per_s', 0):,.0f}/s), tracker "
                f"{last['tracker_completed']}, lag {last['consumer_lag']:,}, "
                f"ingest lag {last['ingest_lag_records']}, RSS "
                + " ".join(f"{k} {v / 2**20:.0f}M" for k, v in last["rss"].items()
                           if v and not k.startswith("w")))
            # A grid that stops completing while tasks are outstanding is a
            # finding, not a wait: stop and report it.
            if done > last_done or self.acked <= done:
                last_done, last_progress = done, time.time()
            elif time.time() - last_progress > a.stall_s:
                self.stalled_s = round(time.time() - last_progress, 1)
                log(f"STALLED: no task completed for {self.stalled_s} s with "
                    f"{self.acked - done:,} outstanding; stopping")
                break
            if at10 is None and done >= a.tasks // 10:
                at10 = dict(last["rss"])
            if not faults_done and not a.no_faults and done >= a.tasks // 2:
                faults_done = True
                restart_s, catch_up_s = self.restart_tracker()
                self.restart_scheduler(sorted(self.schedulers)[-1])
            if done >= a.tasks and self.tally.last["completed"] >= a.tasks:
                # The tracker must agree once it caught up.
                if last["tracker_completed"] == a.tasks:
                    break
        self.stop_submit.set()
        at100 = dict(self.samples[-1]["rss"])
        # The tracker says done once its view is current again (it may have been
        # restarted moments ago): asked for a bounded while.
        final_summary = None
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                final_summary = self.summary()
                if final_summary.done:
                    break
            except grpc.RpcError:
                pass
            time.sleep(0.2)
        self.tally.stop()
        tl = self.tally.last
        seconds = self.samples[-1]["t"]
        tracker_completed = final_summary.counts.completed if final_summary else 0
        result = {
            "tasks": a.tasks,
            "acknowledged": self.acked,
            "seconds": round(seconds, 1),
            "tasks_per_second": round(tl["completed"] / seconds, 1) if seconds else 0,
            # Interrupted: what had not completed yet is outstanding, not lost.
            "lost": (None if self.interrupted or self.stalled_s
                     else self.acked - tl["completed"]),
            "outstanding": self.acked - tl["completed"],
            "repeated_executions": tl["duplicates"],
            "unexpected": tl["unexpected"],
            "tracker_completed": tracker_completed,
            "double_counted": max(0, tracker_completed - tl["completed"]),
            "tracker_done": bool(final_summary and final_summary.done),
            "interrupted": self.interrupted,
            "stalled_seconds": self.stalled_s,
            "submit_retries": self.submit_retries,
            "max_outstanding": a.max_outstanding,
            "max_ingest_lag": a.max_ingest_lag,
            "tracker_restart_seconds": (round(restart_s, 2)
                                        if restart_s is not None else None),
            "tracker_catch_up_seconds": (round(catch_up_s, 2)
                                         if catch_up_s is not None else None),
            "max_rss_mib": {},
            "rss_mib_at_10pct": {k: round(v / 2**20, 1) for k, v in (at10 or {}).items()
                                 if v},
            "rss_mib_at_100pct": {k: round(v / 2**20, 1) for k, v in at100.items() if v},
            "broker_disk_bytes_per_task": round(
                self.samples[-1]["broker_disk"] / max(1, a.tasks), 1),
            "tracker_disk_bytes_per_task": round(
                self.samples[-1]["tracker_disk"] / max(1, a.tasks), 1),
            "events": self.events,
        }
        for s in self.samples:
            for k, v in s["rss"].items():
                if v:
                    result["max_rss_mib"][k] = max(result["max_rss_mib"].get(k, 0),
                                                   round(v / 2**20, 1))
        for key, field in (("summary", "ms_summary"), ("list_first", "ms_list_first"),
                           ("list_deep", "ms_list_deep")):
            vals = [s[field] for s in self.samples if s[field] is not None]
            result[f"{key}_p99_ms"] = round(pct(vals, 0.99), 2) if vals else None
        gets = [ms for s in self.samples for ms in s["ms_get_task"]]
        result["get_task_p99_ms"] = round(pct(gets, 0.99), 2) if gets else None
        result["cpu_us_per_task"] = cpu_us_per_task(self.samples)
        return result

    def stop(self):
        self.stop_submit.set()
        if hasattr(self, "tally"):
            self.tally.stop()
        for p in self.workers:
            p.stop()
        for p, _ in self.schedulers.values():
            p.stop()
        if hasattr(self, "tracker"):
            self.tracker.stop()
        if hasattr(self, "kafka"):
            self.kafka.stop()


def cpu_us_per_task(samples):
    """CPU microseconds per completed task of each process over the run, from
    the samples' CPU rates (so a process restarted by a fault counts both of its
    lives, less the interval it was killed in), with "kwq" the schedulers, the
    tracker and the workers together."""
    cpu_s = {}
    for prev, s in zip(samples, samples[1:]):
        dt = s["t"] - prev["t"]
        for name, percent in s.get("cpu_percent", {}).items():
            cpu_s[name] = cpu_s.get(name, 0.0) + percent * dt / 100
    tasks = samples[-1]["tally_completed"] - samples[0]["tally_completed"] if samples else 0
    if tasks <= 0:
        return {}
    out = {k: round(v * 1e6 / tasks, 1) for k, v in sorted(cpu_s.items())}
    out["kwq"] = round(sum(v for k, v in cpu_s.items()
                           if k not in ("broker", "event_tally")) * 1e6 / tasks, 1)
    return out


def plot(samples, events, out_dir, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    t = [s["t"] / 60 for s in samples]
    charts = []

    def chart(name, ylabel, series, logy=False):
        fig, ax = plt.subplots(figsize=(9, 4))
        for label, ys in series:
            ax.plot(t, ys, label=label, linewidth=1)
        for when, what in events:
            ax.axvline(when / 60, color="grey", linestyle=":", linewidth=0.8)
        ax.set_xlabel("minutes")
        ax.set_ylabel(ylabel)
        if logy:
            ax.set_yscale("log")
        ax.set_title(f"{title}: {name}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", ncol=3)
        path = os.path.join(out_dir, f"soak-{name.replace(' ', '-')}.png")
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
        charts.append(path)

    chart("throughput", "tasks per second", [
        ("completed", [s.get("completions_per_s", 0) for s in samples]),
        ("submitted", [s.get("submits_per_s", 0) for s in samples])])
    names = sorted({k for s in samples for k in s["rss"]})
    chart("rss", "MiB", [(k, [(s["rss"].get(k) or 0) / 2**20 for s in samples])
                         for k in names if not k.startswith("w") or k == "w0"])
    chart("lag", "records / tasks", [
        ("consumer lag (schedulers)", [s["consumer_lag"] for s in samples]),
        ("tracker ingest lag (events)", [s["ingest_lag_records"] or 0 for s in samples]),
        ("outstanding (acked - completed)",
         [s["acked"] - s["tally_completed"] for s in samples])])
    chart("query latency", "ms", [
        ("GetJobSummary", [s["ms_summary"] or 0 for s in samples]),
        ("ListTasks first page", [s["ms_list_first"] or 0 for s in samples]),
        ("ListTasks deep page", [s["ms_list_deep"] or 0 for s in samples]),
        ("GetTask (max of 5)", [max(s["ms_get_task"] or [0]) for s in samples])],
        logy=True)
    chart("disk", "GiB", [
        ("broker", [s["broker_disk"] / 2**30 for s in samples]),
        ("tracker", [s["tracker_disk"] / 2**30 for s in samples])])
    return charts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=50_000_000)
    ap.add_argument("--schedulers", type=int, default=2)
    ap.add_argument("--workers", type=int, default=4, help="worker processes")
    ap.add_argument("--slots", type=int, default=16, help="slots per worker")
    ap.add_argument("--task-ms", type=int, default=0, help="compute time per task")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--max-outstanding", type=int, default=200_000,
                    help="submitted but not completed tasks at most")
    ap.add_argument("--max-ingest-lag", type=int, default=100_000,
                    help="events the tracker may be behind before submits wait")
    ap.add_argument("--broker-heap", default="1g",
                    help="the broker's fixed JVM heap (start.sh --heap), allocated at "
                    "start so its RSS is flat; '' for the default growing heap")
    ap.add_argument("--stall-s", type=float, default=300,
                    help="stop and fail when no task completed for this long "
                    "while tasks are outstanding")
    ap.add_argument("--tracker-arg", action="append", default=[],
                    help="a flag for kwq_tracker, e.g. --tracker-arg=--write_buffer_mb=128 "
                    "(repeat for more)")
    ap.add_argument("--sample-s", type=float, default=10.0)
    ap.add_argument("--timeout-s", type=float, default=0,
                    help="give up after this long (default: 1 ms per task + 10 min)")
    ap.add_argument("--no-faults", action="store_true",
                    help="no kill -9 of the tracker and a scheduler halfway")
    ap.add_argument("--out", default="", help="where samples and charts go "
                    "(default: a temp dir, printed)")
    ap.add_argument("--bins", required=True, help="bazel's bin directory")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    a = ap.parse_args()
    if a.tasks < 1000 or a.batch < 1:
        ap.error("--tasks must be at least 1000")
    if not a.timeout_s:
        a.timeout_s = a.tasks / 1000 + 600
    work = tempfile.mkdtemp(prefix="kwq-soak.")
    out = a.out or os.path.join(work, "out")
    os.makedirs(out, exist_ok=True)
    log(f"work dir {work}, output {out}")
    soak = Soak(a, work, a.bins)

    def interrupt(signum, frame):
        log("interrupted: stopping and reporting what ran")
        soak.interrupted = True
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    try:
        result = soak.run()
    finally:
        soak.stop()
    result["date"] = time.strftime("%Y-%m-%d")
    if a.tracker_arg:
        result["tracker_args"] = a.tracker_arg
    with open(os.path.join(out, "samples.json"), "w") as f:
        json.dump({"result": result, "samples": soak.samples}, f)
    result["charts"] = plot(soak.samples, soak.events, out, f"{a.tasks:,} tasks")
    for k in ("tasks", "seconds", "tasks_per_second", "lost", "repeated_executions",
              "double_counted", "tracker_restart_seconds", "tracker_catch_up_seconds", "summary_p99_ms",
              "list_first_p99_ms", "list_deep_p99_ms", "get_task_p99_ms",
              "broker_disk_bytes_per_task", "tracker_disk_bytes_per_task"):
        print(f"{k:32} {result[k]}", file=sys.stderr)
    print(f"{'max_rss_mib':32} {result['max_rss_mib']}", file=sys.stderr)
    print(f"{'cpu_us_per_task':32} {result['cpu_us_per_task']}", file=sys.stderr)
    if a.json:
        print(json.dumps(result))
    if not a.keep and not a.out:
        pass  # the output dir is inside work; keep it, say where
    elif not a.keep:
        subprocess.run(["rm", "-rf", work])
    return 1 if (result["lost"] or result["double_counted"] or soak.interrupted
                 or soak.stalled_s) else 0


if __name__ == "__main__":
    sys.exit(main())

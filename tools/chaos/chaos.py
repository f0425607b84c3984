#!/usr/bin/env python3
"""kwq's chaos checker: a real grid, real faults, and an independent count.

Starts Kafka (one broker, or a 3-broker cluster with --cluster), several
kwq_scheduler instances, a kwq_tracker and simulated_worker processes, submits
one job with client-given ids (keeping its own log of acknowledged Submits),
injects faults on a schedule while the job runs, then checks what happened from
three independent sources: the workers' own execution logs, the events topic
(read here with confluent-kafka) and the tracker. See tools/chaos/README.md.

Exit status 1 when anything was LOST, DOUBLE-COUNTED, UNEXPECTED or STUCK.
"""
import argparse
import collections
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "python"))

import grpc  # noqa: E402
from confluent_kafka import Consumer, TopicPartition  # noqa: E402
import kwq_client._gen  # noqa: E402,F401  (puts tools/python/gen on the path)
from grid_processes import Kafka, Proc, glog_time, log_to  # noqa: E402
from kwq.v1 import (  # noqa: E402
    scheduler_pb2, scheduler_pb2_grpc, task_pb2, tracker_pb2, tracker_pb2_grpc)

BIN = os.path.join(ROOT, "bazel-bin")
LEASE_MS = 3000


log = log_to("chaos")


class Grid:
    def __init__(self, args, kafka, work):
        self.args, self.kafka, self.work = args, kafka, work
        self.prefix = f"chaos{os.getpid()}x{int(time.time())}"
        self.key_file = os.path.join(work, "lease.key")
        with open(self.key_file, "wb") as f:
            f.write(os.urandom(32))
        # The group's liveness: a session of --session-ms, heartbeats 10x as
        # often.
        self.kafka_config = os.path.join(work, "scheduler-kafka.properties")
        with open(self.kafka_config, "w") as f:
            f.write(f"session.timeout.ms={args.session_ms}\n"
                    f"heartbeat.interval.ms={max(100, args.session_ms // 10)}\n")
        self.schedulers = {}  # name -> (Proc, address)
        self.workers = {}     # name -> Proc
        self.exec_logs = []
        self.worker_seq = 0

    def start_scheduler(self, name, port=0, bootstrap=None):
        p = Proc(name, [
            os.path.join(BIN, "server", "kwq_scheduler"),
            f"--listen=127.0.0.1:{port}",
            f"--bootstrap_servers={bootstrap or self.kafka.bootstrap}",
            f"--topic_prefix={self.prefix}", f"--partitions={self.args.partitions}",
            f"--lease_period_ms={LEASE_MS}", "--heartbeat_period_ms=500",
            "--retry_backoff_ms=50", f"--lease_key_file={self.key_file}",
            f"--scheduler_id={name}", "--kafka_wait_ms=60000",
            f"--kafka_config={self.kafka_config}"], self.work).start()
        address = p.wait_line(r"listening on (\S+)", 120).group(1)
        self.schedulers[name] = (p, address)
        return address

    def start_tracker(self):
        self.tracker = Proc("tracker", [
            os.path.join(BIN, "tracker", "kwq_tracker"), "--listen=127.0.0.1:0",
            f"--bootstrap_servers={self.kafka.bootstrap}",
            f"--topic_prefix={self.prefix}", f"--db={os.path.join(self.work, 'db')}",
            "--kafka_wait_ms=60000"], self.work).start()
        self.tracker_address = self.tracker.wait_line(r"listening on (\S+)", 120).group(1)

    def start_worker(self, scheduler):
        self.worker_seq += 1
        name = f"w{self.worker_seq}"
        exec_log = os.path.join(self.work, f"exec-{name}.log")
        self.exec_logs.append(exec_log)
        _, address = self.schedulers[scheduler]
        p = Proc(name, [
            os.path.join(BIN, "worker_sdk", "examples", "simulated_worker"),
            f"--scheduler={address}", f"--worker_id={name}",
            f"--slots={self.args.slots}", f"--duration_ms={self.args.task_ms}",
            "--jitter_ms=10", f"--execution_log={exec_log}"], self.work).start()
        self.workers[name] = (p, scheduler)
        return name


class Submitter(threading.Thread):
    """Submits the job in batches, at a steady pace, and logs acknowledged ids."""

    def __init__(self, address, n, rate, acked_log):
        super().__init__(daemon=True)
        self.stub = scheduler_pb2_grpc.SchedulerStub(grpc.insecure_channel(address))
        self.n, self.rate, self.acked_log = n, rate, acked_log
        self.submitted, self.acked = set(), set()
        self.retries = 0
        self.done = threading.Event()

    def run(self):
        batch = 250
        start = time.time()
        with open(self.acked_log, "a") as out:
            for b in range(0, self.n, batch):
                # Paced: the batch may go when the rate allows it.
                due = start + b / self.rate
                if time.time() < due:
                    time.sleep(due - time.time())
                ids = [f"chaos-{i}" for i in range(b, min(self.n, b + batch))]
                tasks = [task_pb2.Task(id=i, job_id="chaos-job", priority=k % 4,
                                       payload=b"x" * 128)
                         for k, i in enumerate(ids)]
                self.submitted.update(ids)
                while True:  # until acknowledged: the same ids, so no duplicates
                    try:
                        self.stub.Submit(scheduler_pb2.SubmitRequest(tasks=tasks),
                                         timeout=30)
                        break
                    except grpc.RpcError as e:
                        self.retries += 1
                        log(f"submit retry ({e.code().name}: {e.details()[:120]})")
                        time.sleep(0.5)
                self.acked.update(ids)
                out.write("\n".join(ids) + "\n")
                out.flush()
        self.done.set()


def ts(t):
    return t.seconds + t.nanos / 1e9


def read_events(bootstrap, topic, starts=None, submits=None, priorities=None):
    """Per task id: the COMPLETED events of the events topic, read to its end.

    Also fills, per task, its first submit (PENDING) time, its priority and its
    first start (ALLOCATED, or the allocated_time a folded event carries)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"chaos-check-{os.getpid()}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    md = c.list_topics(topic, timeout=30)
    parts = [TopicPartition(topic, p, 0) for p in md.topics[topic].partitions]
    ends = {p.partition: c.get_watermark_offsets(p, timeout=30)[1] for p in parts}
    c.assign(parts)
    done = {p: ends[p] == 0 for p in ends}
    completed = collections.Counter()
    deadline = time.time() + 300
    while not all(done.values()) and time.time() < deadline:
        for msg in c.consume(1000, timeout=1.0):
            if msg.error():
                continue
            if msg.offset() + 1 >= ends[msg.partition()]:
                done[msg.partition()] = True
            ev = task_pb2.TaskEvent()
            try:
                ev.ParseFromString(msg.value())
            except Exception:  # a record that is not an event counts as nothing
                continue
            if ev.state == task_pb2.COMPLETED:
                completed[ev.task_id] += 1
            if starts is None:
                continue
            if ev.state == task_pb2.PENDING and ev.attempt <= 1:
                t = ts(ev.time)
                if ev.task_id not in submits or t < submits[ev.task_id]:
                    submits[ev.task_id] = t
                if ev.HasField("time"):
                    priorities.setdefault(ev.task_id, ev.priority)
            start = None
            if ev.state in (task_pb2.ALLOCATED, task_pb2.RUNNING):
                start = ts(ev.time)
            if ev.HasField("allocated_time"):
                start = ts(ev.allocated_time)
            if start is not None and ev.attempt <= 1:
                if ev.task_id not in starts or start < starts[ev.task_id]:
                    starts[ev.task_id] = start
    c.close()
    return completed


def count_inversions(starts, submits, priorities, slack=0.005):
    """Starts of a task while a higher-priority task waited anywhere in the group
    (submitted before it by more than `slack`, started after it by more than
    `slack`): the cross-instance priority inversions of first attempts."""
    import bisect
    by_p = collections.defaultdict(list)
    for t, start in starts.items():
        if t in submits:
            by_p[priorities.get(t, 0)].append((submits[t], start))
    # Per priority: submits sorted, and the latest start among those submitted
    # up to each point.
    index = {}
    for p, rows in by_p.items():
        rows.sort()
        subs, latest, m = [], [], float("-inf")
        for sub, st in rows:
            m = max(m, st)
            subs.append(sub)
            latest.append(m)
        index[p] = (subs, latest)
    inversions = 0
    for p, rows in by_p.items():
        for _, start in rows:
            for hp in range(p + 1, 10):
                if hp not in index:
                    continue
                subs, latest = index[hp]
                i = bisect.bisect_left(subs, start - slack) - 1
                if i >= 0 and latest[i] > start + slack:
                    inversions += 1
                    break
    return inversions


def read_exec_logs(paths):
    """Per task id: list of (worker, start_ms, end_ms or None, outcome)."""
    runs = collections.defaultdict(list)
    open_runs = {}
    for path in paths:
        if not os.path.exists(path):
            continue
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) < 5:
                    continue
                what, ms, worker, task, attempt = parts[:5]
                key = (worker, task, attempt)
                if what == "start":
                    open_runs[key] = int(ms)
                elif what == "end":
                    start = open_runs.pop(key, None)
                    runs[task].append((worker, start, int(ms),
                                       parts[5] if len(parts) > 5 else ""))
    for (worker, task, attempt), start in open_runs.items():
        runs[task].append((worker, start, None, "never-ended"))
    return runs


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="the short form (single broker, a few minutes): the "
                         "rebalance kill, a worker kill and a worker stall")
    ap.add_argument("--cluster", action="store_true",
                    help="a 3-broker cluster (replication 3, min.insync 2) instead "
                         "of one broker; adds the loss of one broker")
    ap.add_argument("--tasks", type=int, default=None,
                    help="tasks in the job (default 20000; --quick 6000)")
    ap.add_argument("--rate", type=float, default=None,
                    help="submits per second (default 250)")
    ap.add_argument("--schedulers", type=int, default=3)
    ap.add_argument("--partitions", type=int, default=4,
                    help="partitions per priority topic")
    ap.add_argument("--workers-per-scheduler", type=int, default=2)
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--task-ms", type=int, default=20)
    ap.add_argument("--session-ms", type=int, default=3000,
                    help="the schedulers' consumer-group session timeout "
                         "(session.timeout.ms through --kafka_config; the "
                         "failover time is about one session)")
    ap.add_argument("--steady", action="store_true",
                    help="inject no fault: the same grid and job in steady state "
                         "(priority inversions across instances, duplicates)")
    ap.add_argument("--json", action="store_true", help="end with one JSON line")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    args = ap.parse_args()
    n = args.tasks or (6000 if args.quick else 20000)
    rate = args.rate or 250.0

    work = tempfile.mkdtemp(prefix="kwq-chaos.")
    log(f"work dir {work}")
    kafka = Kafka(args.cluster, work)
    grid = link = None
    faults = []  # (time, kind, detail)
    try:
        kafka.start()
        log(f"kafka at {kafka.bootstrap}")
        grid = Grid(args, kafka, work)
        names = [f"s{i}" for i in range(args.schedulers)]
        # The full form cuts the last instance off the brokers for a while: it
        # reaches them only through a forwarder that can drop everything.
        partitioned = not args.quick and not args.steady
        if partitioned:
            link = kafka.isolable_link()
        for name in names:
            isolated = partitioned and name == names[-1]
            grid.start_scheduler(name, bootstrap=link.bootstrap if isolated else None)
        grid.start_tracker()
        for name in names:
            for _ in range(args.workers_per_scheduler):
                grid.start_worker(name)
        log(f"{len(names)} schedulers, {len(grid.workers)} workers, tracker "
            f"{grid.tracker_address}")
        submitter = Submitter(grid.schedulers[names[-1]][1], n, rate,
                              os.path.join(work, "acked.log"))
        t0 = time.time()
        submitter.start()

        def at(seconds):
            while time.time() < t0 + seconds:
                time.sleep(0.05)

        # --steady: no fault at all, to measure the group's priority
        # inversions and duplicates in steady state.
        if not args.steady:
            # 1. A new instance joins (a rebalance); right after it got partitions,
            #    the first instance is killed -9; then it comes back on its port.
            at(4)
            joiner = f"s{args.schedulers}"
            grid.start_scheduler(joiner)
            grid.start_worker(joiner)  # an instance takes partitions once it has workers
            grid.schedulers[joiner][0].wait_line(r"assigned [1-9]\d* partitions", 60)
            victim, vaddr = names[0], grid.schedulers[names[0]][1]
            grid.schedulers[victim][0].send(signal.SIGKILL)
            faults.append((time.time(), "instance_killed_after_rebalance", victim))
            log(f"killed {victim} -9 right after {joiner} joined")
            at(10)
            grid.start_scheduler(victim, port=int(vaddr.rsplit(":", 1)[1]))
            log(f"{victim} restarted")
            # 2. A worker is killed -9 (its running tasks re-run elsewhere).
            at(13)
            wname = sorted(grid.workers)[1]
            grid.workers[wname][0].send(signal.SIGKILL)
            faults.append((time.time(), "worker_killed", wname))
            log(f"killed worker {wname} -9")
            grid.start_worker(grid.workers[wname][1])
            # 3. A worker stalls past its lease (SIGSTOP), then goes on.
            at(16)
            sname = sorted(grid.workers)[2]
            grid.workers[sname][0].send(signal.SIGSTOP)
            faults.append((time.time(), "worker_stalled", sname))
            log(f"stopped worker {sname} for {LEASE_MS / 1000 + 2:.0f}s")
            at(16 + LEASE_MS / 1000 + 2)
            grid.workers[sname][0].send(signal.SIGCONT)
            if not args.quick:
                # 4. The broker stalls for 10 s (SIGSTOP), then a broker is killed -9
                #    and restarted on its own data.
                at(24)
                os.kill(kafka.pid(2 if args.cluster else 1), signal.SIGSTOP)
                faults.append((time.time(), "broker_stalled", "10s"))
                log("broker stalled (SIGSTOP) for 10 s")
                at(34)
                os.kill(kafka.pid(2 if args.cluster else 1), signal.SIGCONT)
                at(40)
                kafka.kill(3 if args.cluster else 1)
                faults.append((time.time(), "broker_killed", "node 3" if args.cluster else "the broker"))
                log("broker killed -9")
                at(45)
                kafka.restart(3 if args.cluster else 1)
                log("broker restarted on its own data")
                # 5. Another instance killed -9 mid-run.
                at(52)
                v2 = names[1]
                grid.schedulers[v2][0].send(signal.SIGKILL)
                faults.append((time.time(), "instance_killed", v2))
                log(f"killed {v2} -9")
                # 6. A network partition between the last instance (the one the
                #    job is submitted to) and every broker, healed 10 s later.
                at(60)
                link.cut()
                faults.append((time.time(), "instance_partitioned", names[-1]))
                log(f"{names[-1]} cut off from the brokers for 10 s")
                at(70)
                link.heal()
                log(f"{names[-1]}'s network healed")

        submitter.done.wait()
        log(f"all {n} submitted ({len(submitter.acked)} acknowledged, "
            f"{submitter.retries} retries)")
        # Wait for the tracker to say done (or give up: STUCK).
        tracker = tracker_pb2_grpc.TrackerStub(grpc.insecure_channel(grid.tracker_address))
        summary = None
        deadline = time.time() + (180 if args.quick else 300)
        while time.time() < deadline:
            try:
                summary = tracker.GetJobSummary(
                    tracker_pb2.GetJobSummaryRequest(job_id="chaos-job"), timeout=10)
                if summary.done and summary.counts.completed >= len(submitter.acked):
                    break
            except grpc.RpcError:
                pass
            time.sleep(0.5)  # polling the tracker
        elapsed = time.time() - t0
        log(f"tracker: {summary.counts.completed if summary else '?'} completed, "
            f"done={summary.done if summary else '?'} after {elapsed:.0f}s")

        # The independent count.
        starts, submits, priorities = {}, {}, {}
        completed = read_events(kafka.bootstrap, f"{grid.prefix}.events",
                                starts, submits, priorities)
        inversions = count_inversions(starts, submits, priorities)
        # A task becomes visible to the schedulers some time after its Submit
        # began (the produce's acknowledgement, the dispatcher's next fetch):
        # the same count with more slack separates that delay from tasks that
        # really waited while a lower priority started.
        inversions_by_slack = {
            f"{int(sl * 1000)}ms": count_inversions(starts, submits, priorities, sl)
            for sl in (0.005, 0.05, 0.2, 1.0)}
        runs = read_exec_logs(grid.exec_logs)
        acked, submitted = submitter.acked, submitter.submitted
        lost = sorted(acked - set(completed))
        unexpected = sorted((set(completed) | set(runs)) - submitted)
        ok_runs = {t: [r for r in rs if r[3] == "ok"] for t, rs in runs.items()}
        duplicated = {t: rs for t, rs in ok_runs.items() if len(rs) > 1}
        causes = collections.Counter()
        # The cause of a duplicate: the fault whose window (10 s before the first
        # run's start to a lease + 10 s after its end) holds that first run. An
        # instance kill comes first when the first run was on one of that
        # instance's workers (when faults overlap, the more specific one).
        worker_instance = {name: sched for name, (_, sched) in grid.workers.items()}
        for t, rs in duplicated.items():
            first = min(rs, key=lambda r: r[1] or 0)
            cause = "other"
            in_window = [
                (kind, target) for ft, kind, target in faults
                if first[1] is not None and
                first[1] / 1000 - 10 <= ft <= (first[2] or 0) / 1000 + LEASE_MS / 1000 + 10]
            own = [kind for kind, target in in_window
                   if kind.startswith("instance_")
                   and worker_instance.get(first[0]) == target]
            if own:
                cause = own[0]
            elif in_window:
                cause = in_window[0][0]
            causes[cause] += 1
        tracker_completed = summary.counts.completed if summary else 0
        distinct = len(set(completed) & submitted)
        double_counted = max(0, tracker_completed - distinct)
        if summary:
            c = summary.counts
            not_final = c.total - c.completed - c.failed - c.cancelled
            stuck = max(0, not_final) + max(0, len(acked) - c.total)
        else:
            stuck = len(acked)
        # Failover: kill -9 of an instance to the first assignment of one of
        # its partitions at a surviving instance (from their logs).
        failovers = []
        rx = re.compile(r"(assigned|revoking|lost) \d+ partitions[^:]*: (.*)$")

        def partition_lines(path):
            with open(path, errors="replace") as f:
                for line in f:
                    m = rx.search(line.rstrip())
                    t = glog_time(line)
                    if m and t:
                        yield t, m.group(1), set(m.group(2).split())

        for ft, kind, victim in faults:
            if not kind.startswith("instance_"):
                continue
            owned = set()
            for t, what, parts in partition_lines(grid.schedulers[victim][0].out):
                if t > ft:
                    break
                owned = owned | parts if what == "assigned" else owned - parts
            first = None
            for name, (p, _) in grid.schedulers.items():
                if name == victim:
                    continue
                for t, what, parts in partition_lines(p.out):
                    if t > ft and what == "assigned" and parts & owned:
                        first = t if first is None else min(first, t)
                        break
            if first:
                failovers.append(first - ft)
        result = {
            "tasks": n, "acknowledged": len(acked), "seconds": round(elapsed, 1),
            "lost": len(lost), "duplicated": len(duplicated),
            "duplicated_by_cause": dict(causes), "double_counted": double_counted,
            "unexpected": len(unexpected), "stuck": stuck,
            "completed_events_distinct": distinct,
            "tracker_completed": tracker_completed,
            "failover_seconds": [round(f, 2) for f in failovers],
            "failover_seconds_max": round(max(failovers), 2) if failovers else None,
            "priority_inversions": inversions,
            "priority_inversions_by_slack": inversions_by_slack,
            "faults": [k for _, k, _ in faults],
            "brokers": 3 if args.cluster else 1,
        }
        print(f"{'check':<26}{'value':>10}")
        for k in ("tasks", "acknowledged", "lost", "duplicated", "double_counted",
                  "unexpected", "stuck", "failover_seconds_max", "priority_inversions"):
            print(f"{k:<26}{str(result[k]):>10}")
        print(f"duplicated by cause: {dict(causes)}")
        print(f"priority inversions by slack: {inversions_by_slack}")
        if lost:
            print(f"lost (first 20): {lost[:20]}")
        if unexpected:
            print(f"unexpected (first 20): {unexpected[:20]}")
        if args.json:
            print(json.dumps(result))
        bad = result["lost"] or result["double_counted"] or result["unexpected"] or stuck
        return 1 if bad else 0
    finally:
        if grid:
            for p, _ in list(grid.workers.values()):
                p.stop(signal.SIGKILL)
            for p, _ in list(grid.schedulers.values()):
                p.stop(signal.SIGKILL)
            if hasattr(grid, "tracker"):
                grid.tracker.stop(signal.SIGKILL)
        if link:
            link.stop()
        kafka.stop()
        if not args.keep:
            subprocess.run(["rm", "-rf", work])
        else:
            log(f"kept {work}")


if __name__ == "__main__":
    sys.exit(main())

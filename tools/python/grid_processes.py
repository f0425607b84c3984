"""Processes of a grid run as separate programs, for kwq's tools (the chaos
checker, the soak): a child process logging to a file, found by its own pid;
the project's Kafka broker or 3-broker cluster; glog line times."""
import datetime
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def log_to(tool):
    """A logger printing '[tool HH:MM:SS] msg' on stderr."""
    def log(msg):
        print(f"[{tool} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr,
              flush=True)
    return log


class Proc:
    """A child process whose output goes to a file; found by its own pid."""

    def __init__(self, name, cmd, out_dir):
        self.name, self.cmd = name, cmd
        self.out = os.path.join(out_dir, f"{name}.log")
        self.p = None
        self.start_offset = 0  # where this run's output begins in the log

    def start(self):
        # The log is appended to (a restarted process keeps its predecessor's
        # lines), so wait_line reads only what this run wrote.
        f = open(self.out, "ab")
        self.start_offset = f.tell()
        self.p = subprocess.Popen(self.cmd, stdout=f, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)
        f.close()
        return self

    def wait_line(self, pattern, timeout=60):
        """The first match of pattern in what this run has written."""
        deadline = time.time() + timeout
        rx = re.compile(pattern)
        while time.time() < deadline:
            with open(self.out, "r", errors="replace") as f:
                f.seek(self.start_offset)
                for line in f:
                    m = rx.search(line)
                    if m:
                        return m
            if self.p.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.p.returncode}); "
                                   f"see {self.out}")
            time.sleep(0.05)  # polling another process's output
        raise RuntimeError(f"{self.name}: no /{pattern}/ within {timeout}s")

    def send(self, sig):
        if self.p and self.p.poll() is None:
            os.kill(self.p.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if not self.p or self.p.poll() is not None:
            return
        self.send(signal.SIGCONT)
        self.send(sig)
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


class Kafka:
    def __init__(self, cluster, work, heap=None):
        """heap: a fixed JVM heap for the single broker (start.sh --heap), e.g.
        "1g", so its RSS is flat from the start; None: the default growing heap."""
        self.cluster, self.state = cluster, os.path.join(work, "kafka")
        self.heap = heap
        script = "cluster.sh" if cluster else "start.sh"
        self.script = os.path.join(ROOT, "tools", "kafka", script)

    def start(self):
        cmd = ([self.script, "start", self.state] if self.cluster
               else [self.script, "--state-dir", self.state])
        if self.heap and not self.cluster:
            cmd += ["--heap", self.heap]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        env = dict(line.split("=", 1) for line in out.split() if "=" in line)
        self.bootstrap = env["KWQ_KAFKA_BOOTSTRAP"]
        # Each broker's isolable listener: (advertised port, listening port).
        self.isolable = [tuple(int(x) for x in pair.split(":"))
                         for pair in env.get("KWQ_KAFKA_ISOLABLE_PORTS", "").split(",")
                         if pair]
        return self

    def isolable_link(self):
        """A cuttable link to the brokers (see IsolatingProxy), started; connect
        through its bootstrap."""
        if not self.isolable:
            raise RuntimeError("this broker has no isolable listener")
        return IsolatingProxy(self.isolable).start()

    def pid(self, node=1):
        path = (os.path.join(self.state, f"node{node}", "pid") if self.cluster
                else os.path.join(self.state, "pid"))
        with open(path) as f:
            return int(f.read())

    def kill(self, node=1):
        os.kill(self.pid(node), signal.SIGKILL)

    def restart(self, node=1):
        if self.cluster:
            subprocess.run([self.script, "restart", self.state, str(node)], check=True,
                           capture_output=True)
        else:  # start.sh on the same state dir: the same broker, its own data
            subprocess.run([self.script, "--state-dir", self.state, "--timeout", "120"],
                           check=True, capture_output=True)

    def stop(self):
        if self.cluster:
            subprocess.run([self.script, "stop", self.state], capture_output=True)
        else:
            subprocess.run([os.path.join(ROOT, "tools", "kafka", "stop.sh"), self.state],
                           capture_output=True)


class IsolatingProxy:
    """A network partition between one process and the brokers, on loopback and
    without privileges: each broker has a second listener whose advertised port
    is a forwarder here, so a process bootstrapped on `bootstrap` reaches every
    broker only through these forwarders (the metadata it gets back names them).

    cut() stops every byte in both directions and holds new connections
    unanswered (as if the packets were dropped: the client's requests and
    heartbeats time out, its TCP connections stay up); heal() lets what was held
    back flow on, as TCP delivers it once a partition heals."""

    def __init__(self, pairs):
        self.pairs = pairs  # (advertised port, broker's listening port)
        self.bootstrap = ",".join(f"127.0.0.1:{a}" for a, _ in pairs)
        self.flowing = threading.Event()
        self.flowing.set()
        self.closed = False
        self.sockets = []
        self.lock = threading.Lock()

    def start(self):
        for advertised, upstream in self.pairs:
            ls = socket.socket()
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind(("127.0.0.1", advertised))
            ls.listen(64)
            self._keep(ls)
            threading.Thread(target=self._accept, args=(ls, upstream),
                             daemon=True).start()
        return self

    def cut(self):
        self.flowing.clear()

    def heal(self):
        self.flowing.set()

    def stop(self):
        self.closed = True
        self.flowing.set()
        with self.lock:
            for s in self.sockets:
                try:
                    s.close()
                except OSError:
                    pass

    def _keep(self, s):
        with self.lock:
            self.sockets.append(s)

    def _accept(self, ls, upstream):
        while not self.closed:
            try:
                client, _ = ls.accept()
            except OSError:
                return
            self._keep(client)
            threading.Thread(target=self._connect, args=(client, upstream),
                             daemon=True).start()

    def _connect(self, client, upstream):
        self.flowing.wait()  # a new connection is not answered while cut
        try:
            server = socket.create_connection(("127.0.0.1", upstream), timeout=10)
            server.settimeout(None)
        except OSError:
            client.close()
            return
        self._keep(server)
        for src, dst in ((client, server), (server, client)):
            threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while not self.closed:
                self.flowing.wait()
                data = src.recv(65536)
                if not data:
                    break
                self.flowing.wait()  # read before the cut: held until heal
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def glog_time(line):
    """The time of a glog line ('I20261201 07:01:49.260628 ...'), or None."""
    m = re.match(r"[IWEF](\d{8}) (\d\d:\d\d:\d\d\.\d+)", line)
    if not m:
        return None
    t = datetime.datetime.strptime(m.group(1) + " " + m.group(2), "%Y%m%d %H:%M:%S.%f")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp()



"""Shared harness for the integration tests: start the real gust binary on a
free loopback port, talk to it with real clients, stop it and check that it
exited cleanly (and, under the sanitizer build, that it reported nothing).

The binary comes from $GUST_BIN (default build/gust). Every test module is a
plain unittest module; run.py runs them all and prints "N passed, N failed".
"""
import os
import re
import select
import signal
import socket
import subprocess
import time
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
APPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "apps")
GUST_BIN = os.environ.get("GUST_BIN", os.path.join(ROOT, "build", "gust"))
START_LINE = re.compile(r"listening on https?://(?:\[[^\]]+\]|[^:]+):(\d+)")


def _die_with_parent():
    """In the child before exec: a server must not outlive a test run that
    was killed (a hung test under `timeout`, a ^C)."""
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa -- best effort, Linux only
        pass


class Server:
    """A running gust process. Use as a context manager or call stop()."""

    def __init__(self, app, *args, env=None, timeout=10, preexec=None, cwd=None, binary=None):
        """`app` is under tests/integration/apps unless absolute or `cwd`
        is given (then it is relative to cwd, where gust runs)."""
        self.app = app if os.path.isabs(app) or cwd else os.path.join(APPS, app)
        cmd = [binary or GUST_BIN, "--port", "0", *args, self.app]
        self.last_stderr = None
        self.stderr_path = "/tmp/gust-test-%d-%d.err" % (os.getpid(), time.monotonic_ns())
        self._stderr = open(self.stderr_path, "wb")
        full_env = dict(os.environ)
        full_env.update(env or {})
        def child_setup():
            _die_with_parent()
            if preexec:
                preexec()  # e.g. resource limits for a fault test
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._stderr,
                                     env=full_env, cwd=cwd or ROOT, preexec_fn=child_setup)
        self.port = None
        self.start_line = ""
        self.lines = []  # every stdout line read up to the start line
        deadline = time.monotonic() + timeout
        line = b""
        # Read stdout line by line without ever blocking past the deadline
        # (a readline() on the pipe would wait forever for a line that
        # never comes, e.g. when the start line has an unexpected form).
        buf = b""
        fd = self.proc.stdout.fileno()
        started = False
        while time.monotonic() < deadline and not started:
            if b"\n" not in buf:
                r, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
                if not r:
                    break
                data = os.read(fd, 4096)
                if not data:
                    break
                buf += data
                continue
            line, buf = buf.split(b"\n", 1)
            text = line.decode(errors="replace")
            self.lines.append(text)
            m = START_LINE.search(text)
            if m:
                self.port = int(m.group(1))
                self.start_line = text
                started = True
            elif "listening on" in text or " running " in text:
                self.start_line = text
                started = True
        if not started:
            self.stop(check=False)
            raise RuntimeError("gust did not start: %r\n%s" % (line, self.last_stderr))

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stderr(self):
        """Everything gust wrote on stderr so far (also after stop())."""
        if self.last_stderr is not None:
            return self.last_stderr
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_stderr(self, pattern, timeout=3.0):
        """Waits until stderr matches the regex; returns the match or None."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.stderr())
            if m or time.monotonic() > deadline:
                return m
            time.sleep(0.05)

    def wait_stderr_count(self, pattern, n, timeout=3.0):
        """Waits until stderr matches the regex at least n times."""
        deadline = time.monotonic() + timeout
        while True:
            found = len(re.findall(pattern, self.stderr()))
            if found >= n or time.monotonic() > deadline:
                return found >= n
            time.sleep(0.05)

    def stop(self, check=True, sig=signal.SIGTERM, timeout=15):
        """Stops gracefully; with check, asserts exit status 0 and no
        sanitizer report. Returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                if check:
                    raise AssertionError("gust did not stop within %ss" % timeout)
        if self.proc.stdout.closed:
            return self.proc.returncode  # stopped already
        self.proc.stdout.close()
        self._stderr.close()
        err = self.stderr()
        os.unlink(self.stderr_path)
        self.last_stderr = err
        if check:
            if has_sanitizer_report(err):
                raise AssertionError("sanitizer report:\n" + err)
            if self.proc.returncode != 0:
                raise AssertionError("gust exited with %s\n%s" % (self.proc.returncode, err))
        self.last_stderr = err
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop(check=exc[0] is None)


def has_sanitizer_report(text):
    return ("ERROR: AddressSanitizer" in text or "runtime error:" in text or
            "ERROR: LeakSanitizer" in text or "SUMMARY: UndefinedBehaviorSanitizer" in text)


def args_have_unix(args):
    return "--unix" in args


def raw_request(port, data, read_timeout=5.0, shutdown=False):
    """Sends raw bytes on a fresh connection and returns everything the server
    sends until it closes the connection or goes quiet for read_timeout."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as s:
        s.sendall(data)
        if shutdown:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
        except socket.timeout:
            pass
        return b"".join(chunks)


def status_of(response):
    """The status code of the first response in raw bytes, or None."""
    m = re.match(rb"HTTP/1\.[01] (\d{3})", response)
    return int(m.group(1)) if m else None


class GustTestCase(unittest.TestCase):
    """Starts one server per test class from `app` (and `args`)."""
    app = None
    args = ()

    @classmethod
    def setUpClass(cls):
        cls.server = Server(cls.app, *cls.args)
        cls.port = cls.server.port

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()


# ---- a small HTTP/1.x response reader for raw sockets ------------------------

class Response:
    def __init__(self, version, status, reason, headers, body, raw, times=None):
        self.version, self.status, self.reason = version, status, reason
        self.headers = headers  # list of (name, value), as received
        self.body, self.raw = body, raw
        self.chunk_times = times or []  # (monotonic time, chunk data) per chunk

    def header(self, name, default=None):
        vals = self.header_list(name)
        return vals[-1] if vals else default

    def header_list(self, name):
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def __repr__(self):
        return "<Response %s %s %r>" % (self.status, self.headers, self.body[:200])


class Closed(Exception):
    """The peer closed before a complete response arrived."""


class Conn:
    """A raw client connection with a read buffer: send bytes, read whole
    responses (Content-Length, chunked, or until close), detect closes."""

    def __init__(self, port=None, timeout=5.0, unix=None, rcvbuf=None):
        if unix:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(unix)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if rcvbuf:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(timeout)
            self.sock.connect(("127.0.0.1", port))
        self.buf = b""
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _fill(self, n=65536):
        if self.eof:
            raise Closed("connection closed; buffered %r" % self.buf[:200])
        try:
            data = self.sock.recv(n)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            raise Closed("connection closed; buffered %r" % self.buf[:200])
        self.buf += data
        return data

    def read_until(self, delim):
        while delim not in self.buf:
            self._fill()
        i = self.buf.index(delim) + len(delim)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_head(self):
        head = self.read_until(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        m = re.match(rb"(HTTP/1\.[01]) (\d{3}) ?(.*)$", lines[0])
        if not m:
            raise AssertionError("bad status line %r" % lines[0])
        headers = []
        for ln in lines[1:]:
            k, _, v = ln.partition(b":")
            headers.append((k.decode("latin-1"), v.strip().decode("latin-1")))
        return m.group(1).decode(), int(m.group(2)), m.group(3).decode("latin-1"), headers, head

    def read_response(self, method="GET", skip_continue=True):
        """Reads one response. 1xx interim answers are skipped (and kept in
        self.interim) unless skip_continue is False."""
        self.interim = []
        while True:
            version, status, reason, headers, head = self.read_head()
            if 100 <= status < 200 and status != 101 and skip_continue:
                self.interim.append(head)
                continue
            break
        r = Response(version, status, reason, headers, b"", head)
        hmap = {k.lower(): v for k, v in headers}
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return r
        te = hmap.get("transfer-encoding", "").lower()
        if "chunked" in te:
            body = []
            while True:
                line = self.read_until(b"\r\n")
                r.raw += line
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    # trailers until the empty line
                    while True:
                        t = self.read_until(b"\r\n")
                        r.raw += t
                        if t == b"\r\n":
                            break
                    break
                data = self.read_exact(size + 2)
                r.raw += data
                assert data[-2:] == b"\r\n", "chunk not followed by CRLF: %r" % data[-10:]
                body.append(data[:-2])
                r.chunk_times.append((time.monotonic(), data[:-2]))
            r.body = b"".join(body)
        elif "content-length" in hmap:
            r.body = self.read_exact(int(hmap["content-length"]))
            r.raw += r.body
        else:
            # delimited by the close of the connection
            try:
                while True:
                    self._fill()
            except Closed:
                pass
            r.body, self.buf = self.buf, b""
            r.raw += r.body
        return r

    def request(self, method="GET", path="/", headers=(), body=b"", version="HTTP/1.1"):
        hs = "".join("%s: %s\r\n" % kv for kv in headers)
        if body and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers):
            hs += "Content-Length: %d\r\n" % len(body)
        self.send(("%s %s %s\r\nHost: 127.0.0.1\r\n%s\r\n" % (method, path, version, hs)).encode()
                  + body)
        return self.read_response(method)

    def wait_closed(self, timeout=5.0):
        """Returns the seconds until the peer closed (EOF or reset), or None
        if it stayed open for `timeout`. Discards anything received."""
        t0 = time.monotonic()
        if self.eof:
            return 0.0
        self.sock.settimeout(timeout)
        while True:
            remaining = timeout - (time.monotonic() - t0)
            if remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return None
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            if not data:
                self.eof = True
                return time.monotonic() - t0
            self.buf += data

    def is_open(self, wait=0.2):
        """True if the peer has not closed within `wait` seconds."""
        return self.wait_closed(wait) is None


def request(port, method, path, headers=None, timeout=5.0):
    """A plain http.client request on a new connection -> (status, headers, body)."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, r.headers, r.read()
    finally:
        c.close()


def get(port, path, headers=None, timeout=5.0):
    """request(port, "GET", path, ...)"""
    return request(port, "GET", path, headers, timeout)


def spread_connections(port, per_worker, workers=2, hold="/hold?s=1", pid="/pid"):
    """Keep-alive connections to a server of `workers` workers, at least
    `per_worker` to each -> {worker pid: [http.client.HTTPConnection]}.

    Which worker accepts a connection is the kernel's choice, and it can
    favour one for hundreds in a row; so the spread is made, not waited for:
    while the worker with the most connections is held busy (GET `hold` on
    one of its own), the others accept the next ones. The app answers `pid`
    with its worker's pid and `hold` by holding its loop. The caller closes
    the connections."""
    import http.client
    import threading
    by_pid = {}

    def open_one():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", pid)
        by_pid.setdefault(c.getresponse().read().decode(), []).append(c)

    def spread():
        return len(by_pid) == workers and all(len(cs) >= per_worker for cs in by_pid.values())

    def hold_busy(c):
        c.request("GET", hold)
        c.getresponse().read()

    opened = 0
    while opened < workers * per_worker and not spread():
        open_one()
        opened += 1
    for _ in range(5 * workers):
        if spread():
            break
        busy = max(by_pid, key=lambda p: len(by_pid[p]))
        t = threading.Thread(target=hold_busy, args=(by_pid[busy][0],))
        t.start()
        time.sleep(0.2)  # the hold has begun
        for _ in range(per_worker):
            open_one()
        t.join(10)
    if not spread():
        for cs in by_pid.values():
            for c in cs:
                c.close()
        raise AssertionError("connections not spread over %d workers: %r"
                             % (workers, {p: len(cs) for p, cs in by_pid.items()}))
    return by_pid


# ---- Redis for the --redis and gust.redis tests ------------------------------

def free_port():
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisError(Exception):
    """An error reply."""


def _resp_read(f):
    line = f.readline()
    if not line:
        raise EOFError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RedisError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_resp_read(f) for _ in range(n)]
    raise AssertionError("bad RESP line %r" % line)


class RedisClient:
    """A blocking RESP client for the tests' own checks (not gust's)."""

    def __init__(self, port=None, unix=None, timeout=5):
        if unix:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(unix)
        else:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.f = self.sock.makefile("rb")

    def send(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))

    def read(self):
        return _resp_read(self.f)

    def __call__(self, *args):
        self.send(*args)
        return self.read()

    def close(self):
        self.f.close()
        self.sock.close()


class RedisServer:
    """A redis-server of the test's own on a free 127.0.0.1 port (and a Unix
    socket), no persistence; stop(), start() again on the same port,
    pause()/resume() (SIGSTOP/SIGCONT)."""

    def __init__(self, password=None, port=None):
        import tempfile
        self.port = port or free_port()
        self.password = password
        self.dir = tempfile.mkdtemp(prefix="gust-redis-")
        self.unix = os.path.join(self.dir, "redis.sock")
        self.proc = None
        self.start()

    def url(self, db=None):
        auth = ":%s@" % self.password if self.password else ""
        return "redis://%s127.0.0.1:%d%s" % (auth, self.port, "/%d" % db if db is not None else "")

    def start(self, timeout=10):
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--dir", self.dir,
               "--unixsocket", self.unix, "--unixsocketperm", "700", "--daemonize", "no",
               "--loglevel", "warning"]
        if self.password:
            cmd += ["--requirepass", self.password]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while True:
            try:
                c = self.client()
                try:
                    if c("PING") == "PONG":
                        return
                finally:
                    c.close()
            except (OSError, EOFError, RedisError):
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("redis-server did not start on port %d" % self.port)
            time.sleep(0.02)

    def client(self):
        c = RedisClient(self.port)
        if self.password:
            c("AUTH", self.password)
        return c

    def client_db(self, db):
        """A one-command caller on database db."""
        def call(*args):
            c = self.client()
            try:
                c("SELECT", db)
                return c(*args)
            finally:
                c.close()
        return call

    def __call__(self, *args):
        c = self.client()
        try:
            return c(*args)
        finally:
            c.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
        self.stop()
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

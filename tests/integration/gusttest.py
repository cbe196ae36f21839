"""Shared harness for the integration tests: start the real gust binary on a
free loopback port, talk to it with real clients, stop it and check that it
exited cleanly (and, under the sanitizer build, that it reported nothing).

The binary comes from $GUST_BIN (default build/gust). Every test module is a
plain unittest module; run.py runs them all and prints "N passed, N failed".
"""
import os
import re
import signal
import socket
import subprocess
import time
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
APPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "apps")
GUST_BIN = os.environ.get("GUST_BIN", os.path.join(ROOT, "build", "gust"))
START_LINE = re.compile(r"listening on http://(?:\[[^\]]+\]|[^:]+):(\d+)")


class Server:
    """A running gust process. Use as a context manager or call stop()."""

    def __init__(self, app, *args, env=None, timeout=10):
        self.app = app if os.path.isabs(app) else os.path.join(APPS, app)
        cmd = [GUST_BIN, "--port", "0", *args, self.app]
        self.stderr_path = "/tmp/gust-test-%d-%d.err" % (os.getpid(), time.monotonic_ns())
        self._stderr = open(self.stderr_path, "wb")
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._stderr,
                                     env=full_env, cwd=ROOT)
        self.port = None
        deadline = time.monotonic() + timeout
        line = b""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = START_LINE.search(line.decode())
            if m:
                self.port = int(m.group(1))
                break
            if b"running" in line:
                break
        if self.port is None and not args_have_unix(args) and b"running" not in line:
            self.stop(check=False)
            raise RuntimeError("gust did not start: %r\n%s" % (line, self.stderr()))

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

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
        self.proc.stdout.close()
        self._stderr.close()
        err = self.stderr()
        os.unlink(self.stderr_path)
        if check:
            if "ERROR: AddressSanitizer" in err or "runtime error:" in err or \
                    "ERROR: LeakSanitizer" in err:
                raise AssertionError("sanitizer report:\n" + err)
            if self.proc.returncode != 0:
                raise AssertionError("gust exited with %s\n%s" % (self.proc.returncode, err))
        self.last_stderr = err
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop(check=exc[0] is None)


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

"""Long-polling benchmark (issue 3): N concurrent long-poll requests held
open on one worker, then one message wakes them all.

Reports the server's RSS per waiting request (VmRSS growth / N) and the
time from the notify to the last of the N responses arriving.

    python3 tests/bench/longpoll.py [N]      (default 10000; needs build/gust)
"""
import http.client
import json
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
N = int(sys.argv[1]) if len(sys.argv) > 1 else 10000


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path)
    body = c.getresponse().read()
    c.close()
    return body


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if N + 100 > hard:
        sys.exit("need %d file descriptors, the hard limit is %d" % (N + 100, hard))
    app = os.path.join(ROOT, "tests", "integration", "apps", "longpoll.lua")
    proc = subprocess.Popen(["taskset", "-c", "0", os.path.join(ROOT, "build", "gust"),
                             "--port", "0", "--log-level", "warn", app],
                            stdout=subprocess.PIPE)
    try:
        line = proc.stdout.readline().decode()
        port = int(line.rsplit(":", 1)[1].split()[0])
        get(port, "/stats")  # warm up
        time.sleep(0.2)
        # gust is a master and a worker; the worker holds the requests.
        with open("/proc/%d/task/%d/children" % (proc.pid, proc.pid)) as f:
            worker = int(f.read().split()[0])
        before = rss_kib(worker)
        sel = selectors.DefaultSelector()
        socks = []
        for _ in range(N):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /cond HTTP/1.1\r\nHost: x\r\n\r\n")
            socks.append(s)
        deadline = time.monotonic() + 60
        while json.loads(get(port, "/stats"))["waiting"] < N:
            if time.monotonic() > deadline:
                sys.exit("the server did not hold %d waiting requests" % N)
            time.sleep(0.05)
        time.sleep(0.5)
        during = rss_kib(worker)
        for s in socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        # One notify_all() on the Condition wakes every waiter.
        t0 = time.monotonic()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("POST", "/notify", "item=m",
                  {"Content-Type": "application/x-www-form-urlencoded"})
        status = c.getresponse().status
        got = 0
        answered = set()
        while got < N and time.monotonic() - t0 < 30:
            for key, _ in sel.select(timeout=1):
                data = key.fileobj.recv(4096)
                if data and key.fileobj not in answered:
                    answered.add(key.fileobj)
                    got += 1
                sel.unregister(key.fileobj)
        t1 = time.monotonic()
        for s in socks:
            s.close()
        print("long polling: %d waiting requests; server RSS %d KiB -> %d KiB: %.2f KiB per waiting"
              " request (coroutine, handler, connection)" % (N, before, during, (during - before) / N))
        print("wake-up: notify answered %d; all %d responses received %.1f ms after the notify"
              % (status, got, (t1 - t0) * 1000))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()

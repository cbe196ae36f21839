#!/usr/bin/python3
"""Memory cost of idle keep-alive connections, for tests/bench/hello.sh.

usage: conn_hold.py PORT PID [N]

Reads VmRSS of PID, opens N (default 10000) TCP connections to
127.0.0.1:PORT one after the other, sends `GET / HTTP/1.1` on each and reads
the complete response (Content-Length or chunked), keeps every connection
open, waits a moment, reads VmRSS again, checks how many connections the
server closed meanwhile, then closes them all. Prints `key=value` lines.
Stdlib only; every socket operation has a timeout.
"""
import select
import socket
import sys
import time

REQ = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
EXPECT = b"Hello, world"


def vmrss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for pid %d" % pid)


def read_response(s):
    """Read one HTTP/1.1 response; return (status, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed before response headers")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower()] = v.strip()
    if b"content-length" in headers:
        n = int(headers[b"content-length"])
        while len(rest) < n:
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed inside body")
            rest += chunk
        return status, rest[:n], headers
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        while not rest.endswith(b"0\r\n\r\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed inside chunked body")
            rest += chunk
        body, data = b"", rest
        while True:
            size_line, _, data = data.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            body += data[:size]
            data = data[size + 2:]
        return status, body, headers
    raise RuntimeError("response without Content-Length or chunked encoding")


def main():
    port, pid = int(sys.argv[1]), int(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 10000

    # Warm-up on one connection (loads/JITs the handler path), then close it.
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    for _ in range(200):
        s.sendall(REQ)
        read_response(s)
    s.close()
    time.sleep(1.0)

    before = vmrss_kib(pid)
    socks = []
    bad = 0
    t0 = time.monotonic()
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(REQ)
        status, body, _ = read_response(s)
        if status != 200 or body != EXPECT:
            bad += 1
        socks.append(s)
    elapsed = time.monotonic() - t0
    time.sleep(1.0)
    after = vmrss_kib(pid)

    # A connection the server closed (or that has unexpected data) is readable.
    closed = 0
    poller = select.poll()
    for s in socks:
        poller.register(s.fileno(), select.POLLIN)
    for _fd, ev in poller.poll(0):
        closed += 1

    print("conns=%d" % n)
    print("open_seconds=%.2f" % elapsed)
    print("bad_responses=%d" % bad)
    print("closed_by_server=%d" % closed)
    print("rss_before_kib=%d" % before)
    print("rss_after_kib=%d" % after)
    print("kib_per_conn=%.2f" % ((after - before) / n))
    for s in socks:
        s.close()
    return 0 if bad == 0 and closed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

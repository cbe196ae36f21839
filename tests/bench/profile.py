"""The two halves of tests/bench/profile.sh.

profile.py client PORT PATH WARMUP N
    GETs PATH over one keep-alive connection WARMUP times, zeroes the
    callgrind counters, GETs it N more times and dumps them.
profile.py report N TOP FILE...
    Reads the dumps (callgrind's format), takes the one with the most
    instructions (the worker), and prints its instructions per request, per
    library and for the TOP costliest functions (exclusive cost).
"""
import collections
import re
import signal
import socket
import subprocess
import sys
import time


def client(port, path, warm, n):
    for _ in range(300):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=60)
            break
        except OSError:
            time.sleep(0.1)
    else:
        sys.exit("profile.py: nothing listens on port %d" % port)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: profile\r\nAccept: */*\r\n\r\n"
           % path).encode()
    buf = b""

    def once():
        nonlocal buf
        s.sendall(req)
        while True:
            h = buf.find(b"\r\n\r\n")
            if h >= 0:
                head = buf[:h].decode("latin1").split("\r\n")
                if not head[0].split(" ")[1].startswith("2"):
                    sys.exit("profile.py: %s answered %s" % (path, head[0]))
                length = [int(v) for k, _, v in (l.partition(":") for l in head[1:])
                          if k.strip().lower() == "content-length"]
                if not length:
                    sys.exit("profile.py: no Content-Length")
                if len(buf) >= h + 4 + length[0]:
                    buf = buf[h + 4 + length[0]:]
                    return
            data = s.recv(65536)
            if not data:
                sys.exit("profile.py: the server closed the connection")
            buf += data

    for _ in range(warm):
        once()
    subprocess.run(["callgrind_control", "--zero"], check=True, capture_output=True)
    for _ in range(n):
        once()
    subprocess.run(["callgrind_control", "--dump"], check=True, capture_output=True)
    s.close()


def exclusive_costs(path):
    """{(object, function): instructions} from a callgrind output file. A
    cost line after "calls=" is the callee's inclusive cost: not counted."""
    names = {}
    costs = collections.Counter()
    obj = fn = None
    after_call = False

    def name(kind, text):
        m = re.match(r"\((\d+)\)(?: (.*))?$", text)
        if not m:
            return text
        if m.group(2) is not None:
            names[kind, m.group(1)] = m.group(2)
        return names.get((kind, m.group(1)), text)

    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            key, eq, value = line.partition("=")
            if eq and key in ("ob", "cob"):
                v = name("ob", value)
                if key == "ob":
                    obj = v
            elif eq and key in ("fn", "cfn"):
                v = name("fn", value)
                if key == "fn":
                    fn = v
            elif eq and key in ("fl", "fi", "fe", "cfi", "cfl"):
                name("fl", value)
            elif eq and key == "calls":
                after_call = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                parts = line.split()
                if after_call:
                    after_call = False
                elif len(parts) >= 2:
                    costs[obj, fn] += int(parts[1])
    return costs


def report(n, top, files):
    best = max((exclusive_costs(f) for f in files), key=lambda c: sum(c.values()))
    total = sum(best.values())
    print("%.0f instructions per request (%d requests)" % (total / n, n))
    by_obj = collections.Counter()
    for (obj, _), v in best.items():
        by_obj[(obj or "?").rsplit("/", 1)[-1]] += v
    print("\nper library:")
    for obj, v in by_obj.most_common():
        if v >= n:
            print("  %7.0f  %s" % (v / n, obj))
    print("\nfunctions (exclusive; '???' is code LuaJIT compiled):")
    for (obj, fn), v in best.most_common(top):
        print("  %7.0f  %-50s %s" % (v / n, fn, (obj or "?").rsplit("/", 1)[-1]))


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends it quietly
    if len(sys.argv) == 6 and sys.argv[1] == "client":
        client(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif len(sys.argv) >= 5 and sys.argv[1] == "report":
        report(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:])
    else:
        sys.exit(__doc__)

"""gust.shared.dict across workers (DESIGN §4.9): apps/shared_counter.lua
counts hits in a shared dict. Many concurrent requests against two workers
must add up exactly, both workers must have served, the count must survive
a reload (SIGHUP: new workers open the same segment), another server must
not see it, and the segment must be gone from /dev/shm once gust exits."""
import http.client
import json
import os
import signal
import threading
import time
import unittest

from gusttest import Server

APP = "shared_counter.lua"
REQUESTS = 1000
CONCURRENCY = 32


def get_json(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            raise AssertionError("%s -> %d %r" % (path, r.status, body[:300]))
        return json.loads(body)
    finally:
        c.close()


def children(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        return sorted(int(x) for x in f.read().split())


def segments(master_pid):
    prefix = "gust-shdict.%d." % master_pid
    return sorted(n for n in os.listdir("/dev/shm") if n.startswith(prefix))


def wait_for(pred, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return None


def hammer(port, n, concurrency):
    """n GET /incr, each on a new connection, from `concurrency` threads.
    Returns the (count, pid) answers."""
    answers, errors = [], []
    lock = threading.Lock()
    todo = iter(range(n))

    def worker():
        while True:
            with lock:
                if next(todo, None) is None:
                    return
            try:
                r = get_json(port, "/incr")
            except Exception as e:  # noqa -- reported below
                with lock:
                    errors.append(repr(e))
                continue
            with lock:
                answers.append((r["count"], r["pid"]))

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise AssertionError("%d failed requests, e.g. %s" % (len(errors), errors[0]))
    return answers


class SharedDictTest(unittest.TestCase):
    def test_counter_is_exact_across_workers_survives_reload_and_is_removed(self):
        s = Server(APP, "--workers", "2")
        try:
            master = s.proc.pid
            workers = children(master)
            self.assertEqual(2, len(workers))
            segs = segments(master)
            self.assertEqual(1, len(segs), os.listdir("/dev/shm"))
            self.assertTrue(segs[0].endswith(".counters"), segs)

            answers = hammer(s.port, REQUESTS, CONCURRENCY)
            self.assertEqual(REQUESTS, len(answers))
            # every increment returned a distinct value: 1..REQUESTS
            self.assertEqual(list(range(1, REQUESTS + 1)), sorted(c for c, _ in answers))
            served = {pid for _, pid in answers}
            self.assertEqual(set(workers), served, "both workers should have served")

            count = get_json(s.port, "/count")
            self.assertEqual(REQUESTS, count["hits"])
            per_worker = {int(k): v for k, v in count["workers"].items()}
            self.assertEqual(set(workers), set(per_worker))
            self.assertEqual(REQUESTS, sum(per_worker.values()))

            # reload: new workers, same dict
            os.kill(master, signal.SIGHUP)
            new = wait_for(lambda: (lambda c: c if len(c) == 2 and not set(c) & set(workers)
                                    else None)(children(master)))
            self.assertIsNotNone(new, "the old workers should have been replaced")
            after = get_json(s.port, "/count")
            self.assertIn(after["pid"], new)
            self.assertEqual(REQUESTS, after["hits"])
            self.assertEqual(REQUESTS + 1, get_json(s.port, "/incr")["count"])
            self.assertEqual(segs, segments(master))

            # another server has dicts of its own under the same name
            with Server(APP) as other:
                self.assertEqual(0, get_json(other.port, "/count")["hits"])
                self.assertEqual(1, get_json(other.port, "/incr")["count"])
                self.assertEqual(1, len(segments(other.proc.pid)))
            self.assertEqual([], segments(other.proc.pid))
            self.assertEqual(REQUESTS + 2, get_json(s.port, "/incr")["count"])
        finally:
            s.stop()
        self.assertEqual([], segments(master), "the master should remove its segments")

    def test_a_killed_worker_leaves_the_dict_usable(self):
        with Server(APP, "--workers", "2") as s:
            master = s.proc.pid
            hammer(s.port, 100, 8)
            victim = children(master)[0]
            os.kill(victim, signal.SIGKILL)
            self.assertIsNotNone(wait_for(
                lambda: (lambda c: len(c) == 2 and victim not in c)(children(master))))
            self.assertEqual(100, get_json(s.port, "/count")["hits"])
            hammer(s.port, 100, 8)
            self.assertEqual(200, get_json(s.port, "/count")["hits"])
        self.assertEqual([], segments(master))


if __name__ == "__main__":
    unittest.main()

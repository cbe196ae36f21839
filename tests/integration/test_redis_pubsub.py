"""--redis URL (DESIGN §3, §4.9): gust.pubsub channels span several gust
servers through a real redis-server started here on a free loopback port.

Every subscriber on every server gets every message exactly once and in
each publisher's order; Redis down at start, killed and restarted in the
middle of traffic: gust serves on, says so once, keeps local delivery,
counts what it dropped (gust_pubsub_dropped_total) and delivers across
servers again within 2 s of Redis coming back; a malformed URL is refused
with exit status 2 and one line naming the flag."""
import json
import re
import threading
import time
import unittest
import subprocess

from gusttest import GUST_BIN, RedisServer, Server, free_port, get, request

UP = r"redis: pub/sub spans servers through"


def post(port, path, timeout=30):
    """A POST on a new connection -> (status, body as text)."""
    status, _, body = request(port, "POST", path, timeout=timeout)
    return status, body.decode()


def dropped(port):
    _, _, body = get(port, "/metrics")
    m = re.search(rb"^gust_pubsub_dropped_total (\d+)$", body, re.M)
    return int(m.group(1))


def wait_dropped(port, n, timeout=5):
    """gust_pubsub_dropped_total once it reached n (the master counts a
    moment after the worker's own subscribers had the message)."""
    deadline = time.monotonic() + timeout
    while dropped(port) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    return dropped(port)


class Collector(threading.Thread):
    """GET /collect on a server: a subscriber until it has n messages."""

    def __init__(self, port, ch, n, timeout=20):
        super().__init__(daemon=True)
        self.path = "/collect?ch=%s&n=%d&timeout=%g" % (ch, n, timeout)
        self.port, self.timeout = port, timeout
        self.result = None
        self.start()

    def run(self):
        _, _, body = get(self.port, self.path, timeout=self.timeout + 10)
        self.result = json.loads(body)


def wait_ready(server, ch, n, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if int(get(server.port, "/ready?ch=" + ch)[2]) >= n:
            return True
        time.sleep(0.02)
    return False


class RedisCase(unittest.TestCase):
    def subscriber(self, server, ch):
        """One subscriber to ch waiting on server, once it is subscribed."""
        c = Collector(server.port, ch, 1, 10)
        self.assertTrue(wait_ready(server, ch, 1))
        return c

    def assert_received(self, c, msg):
        c.join(15)
        self.assertEqual([msg], c.result["messages"])


class CrossServer(RedisCase):
    def test_every_subscriber_gets_every_message_once_in_publish_order(self):
        with RedisServer() as redis, \
                Server("redis_pubsub.lua", "--workers", "2", "--redis", redis.url()) as a, \
                Server("redis_pubsub.lua", "--workers", "2",
                       "--redis", "unix://" + redis.unix) as b:
            self.assertTrue(a.wait_stderr(UP, 5), a.stderr())
            self.assertTrue(b.wait_stderr(UP, 5), b.stderr())
            per_server = 4
            collectors = [Collector(s.port, "room", 1000, 30) for s in (a, b)
                          for _ in range(per_server)]
            self.assertTrue(wait_ready(a, "room", per_server))
            self.assertTrue(wait_ready(b, "room", per_server))
            results = {}
            pubs = [threading.Thread(target=lambda s=s, name=name: results.update(
                {name: post(s.port, "/burst?ch=room&from=%s&n=500" % name)}))
                for s, name in ((a, "a"), (b, "b"))]
            for t in pubs:
                t.start()
            for t in pubs:
                t.join(30)
            self.assertEqual({"a": (200, "ok"), "b": (200, "ok")}, results)
            for c in collectors:
                c.join(40)
                got = c.result["messages"]
                self.assertEqual(1000, len(got), "a subscriber got %d messages" % len(got))
                self.assertEqual(1000, len(set(got)), "duplicates")
                for name in ("a", "b"):
                    seq = [int(m.split(":")[1]) for m in got if m.startswith(name + ":")]
                    self.assertEqual(list(range(1, 501)), seq, "publisher %s out of order" % name)

    def test_a_message_published_by_another_redis_client_is_delivered(self):
        with RedisServer() as redis, Server("redis_pubsub.lua", "--redis", redis.url()) as a:
            self.assertTrue(a.wait_stderr(UP, 5), a.stderr())
            c = self.subscriber(a, "news")
            self.assertEqual(1, redis("PUBLISH", "gust:news", "from redis-cli"))
            self.assert_received(c, "from redis-cli")


class Faults(RedisCase):
    def test_redis_down_at_start(self):
        port = free_port()
        with Server("redis_pubsub.lua", "--redis", "redis://127.0.0.1:%d/2" % port,
                    "--metrics", "/metrics") as s:
            warn = r"\[warn\] redis: cannot reach 127\.0\.0\.1:%d" % port
            self.assertTrue(s.wait_stderr(warn, 5), s.stderr())
            # local pub/sub works meanwhile, and what could not reach Redis is counted
            c = self.subscriber(s, "local")
            self.assertEqual((200, "ok"), post(s.port, "/pub?ch=local&msg=here"))
            self.assert_received(c, "here")
            self.assertGreaterEqual(wait_dropped(s.port, 1), 1)
            # it keeps trying (backoff up to 1 s) without saying so again
            time.sleep(1.5)
            self.assertEqual(1, len(re.findall(r"\[warn\] redis:", s.stderr())), s.stderr())
            with RedisServer(port=port) as redis:
                self.assertTrue(s.wait_stderr(UP, 3), s.stderr())
                c = self.subscriber(s, "late")
                self.assertEqual(1, redis("PUBLISH", "gust:late", "hello"))
                self.assert_received(c, "hello")

    def test_redis_restarted_during_traffic(self):
        with RedisServer() as redis, \
                Server("redis_pubsub.lua", "--workers", "2", "--redis", redis.url(),
                       "--metrics", "/metrics") as a, \
                Server("redis_pubsub.lua", "--redis", redis.url()) as b:
            self.assertTrue(a.wait_stderr(UP, 5), a.stderr())
            self.assertTrue(b.wait_stderr(UP, 5), b.stderr())
            stop = threading.Event()
            statuses = []

            def traffic():  # a publisher that never stops for the outage
                i = 0
                while not stop.is_set():
                    i += 1
                    statuses.append(post(a.port, "/pub?ch=traffic&msg=%d" % i))
                    time.sleep(0.01)

            t = threading.Thread(target=traffic, daemon=True)
            t.start()
            time.sleep(0.2)
            redis.stop()
            self.assertTrue(a.wait_stderr(r"\[warn\] redis: lost", 5), a.stderr())
            self.assertTrue(b.wait_stderr(r"\[warn\] redis: lost", 5), b.stderr())
            before = dropped(a.port)
            for _ in range(5):  # published while Redis is away: dropped, counted
                self.assertEqual((200, "ok"), post(a.port, "/pub?ch=traffic&msg=lost"))
            self.assertGreaterEqual(wait_dropped(a.port, before + 5), before + 5)
            self.assertEqual(200, get(a.port, "/")[0])
            self.assertEqual(200, get(b.port, "/")[0])
            c = self.subscriber(b, "probe")
            redis.start()
            back = time.monotonic()
            k = 0
            while c.is_alive() and time.monotonic() - back < 5:
                k += 1
                post(a.port, "/pub?ch=probe&msg=%d" % k)
                c.join(0.05)
            resumed = time.monotonic() - back
            c.join(10)
            stop.set()
            t.join(10)
            self.assertTrue(c.result and len(c.result["messages"]) == 1, c.result)
            self.assertLess(resumed, 2.0)
            self.assertTrue(all(st == (200, "ok") for st in statuses), statuses[:5])
            self.assertEqual(1, len(re.findall(r"\[warn\] redis:", a.stderr())), a.stderr())


class BadURL(unittest.TestCase):
    def test_malformed_url_exits_2_with_one_line(self):
        for url in ("127.0.0.1:6379", "redis://", "redis://h:99999", "redis://h/x",
                    "http://h", "unix://relative"):
            p = subprocess.run([GUST_BIN, "--redis", url, "--port", "0", "app.lua"],
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(2, p.returncode, url)
            self.assertEqual(1, p.stderr.count("\n"), p.stderr)
            self.assertIn("--redis", p.stderr)
            self.assertEqual("", p.stdout)


if __name__ == "__main__":
    unittest.main()

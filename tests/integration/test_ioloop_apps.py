"""The IOLoop apps end to end: apps/tcpecho (a raw add_handler accept loop)
answered by a Python client, and apps/chat (long polling) exercised by
several concurrent pollers, one of which leaves mid-wait."""
import http.client
import json
import os
import re
import socket
import threading
import time
import unittest
import urllib.parse

from gusttest import APPS, ROOT, Server

TCPECHO = os.path.join(ROOT, "apps", "tcpecho", "app.lua")
CHAT = os.path.join(ROOT, "apps", "chat", "app.lua")


class TcpEchoTest(unittest.TestCase):
    def setUp(self):
        self.server = Server(TCPECHO)
        out = "".join(self.server.lines)
        m = re.search(r"tcpecho listening on [\d.]+:(\d+)", out)
        self.assertIsNotNone(m, out)
        self.port = int(m.group(1))

    def tearDown(self):
        self.server.stop()

    def test_echoes_lines_for_several_clients(self):
        clients = [socket.create_connection(("127.0.0.1", self.port), timeout=5)
                   for _ in range(5)]
        for i, c in enumerate(clients):
            c.sendall(b"hello %d\nsecond %d\n" % (i, i))
        for i, c in enumerate(clients):
            want = b"hello %d\nsecond %d\n" % (i, i)
            got = b""
            while len(got) < len(want):
                chunk = c.recv(100)
                self.assertTrue(chunk, "connection closed early")
                got += chunk
            self.assertEqual(want, got)
            c.close()

    def test_line_split_across_packets(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as c:
            c.sendall(b"par")
            time.sleep(0.05)
            c.sendall(b"tial line\n")
            self.assertEqual(b"partial line\n", c.recv(100))


class StreamEofTest(unittest.TestCase):
    def test_bytes_and_fin_in_one_segment(self):
        # The bytes and the client's FIN arrive together (TCP_CORK holds the
        # bytes until shutdown() adds the FIN): a stream that reads on
        # without pausing still reads the EOF that came with them.
        with Server(os.path.join(APPS, "tcpdrain.lua")) as s:
            m = re.search(r"tcpdrain listening on [\d.]+:(\d+)", "".join(s.lines))
            self.assertIsNotNone(m, s.lines)
            with socket.create_connection(("127.0.0.1", int(m.group(1))), timeout=5) as c:
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
                c.sendall(b"x" * 1000)
                c.shutdown(socket.SHUT_WR)
                c.settimeout(2)
                try:
                    self.assertEqual(b"", c.recv(100))  # the server's close
                except socket.timeout:
                    self.fail("the EOF that came with the bytes was not read")
            self.assertIsNotNone(s.wait_stderr(r"tcpdrain: got 1000 bytes"), s.stderr())


def post(port, path, fields, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("POST", path, urllib.parse.urlencode(fields),
                 {"Content-Type": "application/x-www-form-urlencoded"})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, body


def stats(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/a/stats")
    data = json.loads(conn.getresponse().read())
    conn.close()
    return data


class ChatTest(unittest.TestCase):
    def setUp(self):
        self.server = Server(CHAT)
        self.port = self.server.port

    def tearDown(self):
        self.server.stop()

    def wait_for(self, pred, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return True
            time.sleep(0.02)
        return False

    def test_page_is_served(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        conn.request("GET", "/")
        resp = conn.getresponse()
        self.assertEqual(200, resp.status)
        self.assertIn(b"/a/message/updates", resp.read())

    def test_pollers_wake_and_a_leaver_is_noticed(self):
        results = {}

        def poller(i):
            results[i] = post(self.port, "/a/message/updates", {})

        threads = [threading.Thread(target=poller, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        # A fifth poller that gives up mid-wait.
        leaver = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        leaver.sendall(b"POST /a/message/updates HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Length: 0\r\n\r\n")
        self.assertTrue(self.wait_for(lambda: stats(self.port)["waiting"] == 5),
                        stats(self.port))
        leaver.close()
        self.assertTrue(self.wait_for(lambda: stats(self.port)["disconnected"] == 1),
                        stats(self.port))
        self.assertEqual(4, stats(self.port)["waiting"])

        t0 = time.monotonic()
        status, body = post(self.port, "/a/message/new", {"body": "hi <all>"})
        self.assertEqual(200, status)
        first = json.loads(body)
        for t in threads:
            t.join(5)
        self.assertLess(time.monotonic() - t0, 2)
        for i in range(4):
            status, body = results[i]
            self.assertEqual(200, status)
            msgs = json.loads(body)["messages"]
            self.assertEqual([first["id"]], [m["id"] for m in msgs])
            self.assertIn("hi &lt;all&gt;", msgs[0]["html"])
        self.assertEqual(0, stats(self.port)["waiting"])

    def test_cursor_returns_only_newer_messages(self):
        _, a = post(self.port, "/a/message/new", {"body": "one"})
        _, b = post(self.port, "/a/message/new", {"body": "two"})
        a, b = json.loads(a), json.loads(b)
        _, body = post(self.port, "/a/message/updates", {"cursor": a["id"]})
        self.assertEqual([b["id"]], [m["id"] for m in json.loads(body)["messages"]])


class ConcurrentSleepTest(unittest.TestCase):
    """50 requests that each sleep 0.5 s finish together in well under 2 s:
    a sleeping handler yields its coroutine instead of blocking the loop."""

    def test_fifty_sleepers(self):
        app = os.path.join(os.path.dirname(os.path.abspath(__file__)), "apps", "sleepy.lua")
        with Server(app) as server:
            done = []

            def one():
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
                conn.request("GET", "/")
                resp = conn.getresponse()
                done.append((resp.status, resp.read()))
                conn.close()

            t0 = time.monotonic()
            threads = [threading.Thread(target=one) for _ in range(50)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(10)
            elapsed = time.monotonic() - t0
            self.assertEqual(50, len(done))
            self.assertTrue(all(s == 200 and b == b"slept" for s, b in done), done[:3])
            self.assertLess(elapsed, 2.0)
            self.assertGreaterEqual(elapsed, 0.5)


if __name__ == "__main__":
    unittest.main()

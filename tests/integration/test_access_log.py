"""The access log (DESIGN §3): one line per request in the combined log
format plus the duration; a request whose client left before the answer is
a 499, as in nginx; a WebSocket session is one line with status 101,
written when it closes; request-derived text cannot forge a line."""
import os
import re
import socket
import tempfile
import time
import unittest

from gusttest import Server
from test_websocket import RawWS

LINE = re.compile(r'^(\S+) - - \[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] '
                  r'"([^"]*)" (\d{3}) (\d+) "([^"]*)" "([^"]*)" (\d+\.\d{3})$')


class AccessLogTest(unittest.TestCase):
    def setUp(self):
        fd, self.path = tempfile.mkstemp(prefix="gust-access-", suffix=".log")
        os.close(fd)

    def tearDown(self):
        os.unlink(self.path)

    def lines(self, n, timeout=5):
        deadline = time.monotonic() + timeout
        while True:
            with open(self.path) as f:
                lines = f.read().splitlines()
            if len(lines) >= n or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)

    def test_combined_format_499_and_escaping(self):
        with Server("sleepy.lua", "--access-log", self.path) as s:
            c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
            c.sendall(b"GET /?a=1 HTTP/1.1\r\nHost: x\r\nReferer: http://r/\r\n"
                      b"User-Agent: t\"est\r\n\r\n")
            self.assertIn(b" 200 OK", c.recv(4096))
            # The client leaves before the (0.5 s) answer.
            c.sendall(b"GET /?left=1 HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.1)
            c.close()
            lines = self.lines(2)
        self.assertEqual(2, len(lines), lines)
        m = LINE.match(lines[0])
        self.assertIsNotNone(m, lines[0])
        self.assertEqual(("127.0.0.1", "GET /?a=1 HTTP/1.1", "200", "5", "http://r/",
                          "t\\x22est"), m.group(1, 3, 4, 5, 6, 7))
        self.assertGreaterEqual(float(m.group(8)), 0.5)
        m = LINE.match(lines[1])
        self.assertIsNotNone(m, lines[1])
        self.assertEqual(("GET /?left=1 HTTP/1.1", "499", "0", "-", "-"), m.group(3, 4, 5, 6, 7))

    def test_websocket_session_is_one_line_at_close(self):
        with Server("ws_app.lua", "--access-log", self.path) as s:
            ws = RawWS(s.port, "/echo")
            self.assertEqual(101, ws.status)
            time.sleep(0.3)
            self.assertEqual([], self.lines(0, timeout=0))  # not yet: still open
            ws.sock.close()
            lines = self.lines(1)
        self.assertEqual(1, len(lines), lines)
        m = LINE.match(lines[0])
        self.assertIsNotNone(m, lines[0])
        self.assertEqual(("GET /echo HTTP/1.1", "101"), m.group(3, 4))
        self.assertGreater(int(m.group(5)), 100)  # the 101 answer's bytes at least
        self.assertGreaterEqual(float(m.group(8)), 0.3)


if __name__ == "__main__":
    unittest.main()

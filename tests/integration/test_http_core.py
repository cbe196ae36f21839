"""The C core's HTTP/1.x behaviour through the real gust binary and real
clients (http.client, raw sockets, curl), against apps/raw.lua: a raw
gust.core handler with no framework in between."""
import email.utils
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from gusttest import (APPS, GUST_BIN, ROOT, Closed, Conn, GustTestCase, Server, get,
                      raw_request, status_of)


def sha1(b):
    return hashlib.sha1(b).hexdigest()


class HTTPCoreTest(GustTestCase):
    app = "raw.lua"

    # ---- connections ---------------------------------------------------

    def test_keep_alive_http_client(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            c.connect()
            local = c.sock.getsockname()
            for i in range(5):
                c.request("GET", "/echo?i=%d" % i)
                r = c.getresponse()
                body = json.loads(r.read())
                self.assertEqual(r.status, 200)
                self.assertEqual(body["query"], "i=%d" % i)
                self.assertFalse(r.will_close)
                self.assertIsNone(r.getheader("Connection"))
            # still the very same TCP connection
            self.assertEqual(c.sock.getsockname(), local)
        finally:
            c.close()

    def test_keep_alive_with_bodies(self):
        with Conn(self.port) as c:
            for i in range(4):
                body = os.urandom(1000 * (i + 1))
                r = c.request("POST", "/echo", body=body)
                self.assertEqual(r.status, 200)
                self.assertEqual(json.loads(r.body)["sha1"], sha1(body))
            self.assertTrue(c.is_open(0.1))

    def test_pipelining_in_order(self):
        with Conn(self.port) as c:
            reqs = b"".join(b"GET /echo?n=%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in (1, 2, 3))
            c.send(reqs)
            got = [json.loads(c.read_response().body)["query"] for _ in range(3)]
            self.assertEqual(got, ["n=1", "n=2", "n=3"])

    def test_pipelining_slow_first(self):
        # The first request takes a while: the second and third must wait
        # for it, not overtake it; a POST body in the middle stays its own.
        with Conn(self.port) as c:
            c.send(b"GET /sleep?n=0.3 HTTP/1.1\r\nHost: x\r\n\r\n"
                   b"POST /echo?n=2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                   b"GET /echo?n=3 HTTP/1.1\r\nHost: x\r\n\r\n")
            r1 = c.read_response()
            r2 = c.read_response()
            r3 = c.read_response()
            self.assertTrue(r1.body.startswith(b"slept"), r1)
            b2, b3 = json.loads(r2.body), json.loads(r3.body)
            self.assertEqual((b2["method"], b2["query"], b2["sha1"]),
                             ("POST", "n=2", sha1(b"hello")))
            self.assertEqual((b3["method"], b3["query"], b3["body_len"]), ("GET", "n=3", 0))

    def test_pipelining_many(self):
        with Conn(self.port) as c:
            n = 100
            c.send(b"".join(b"GET /echo?n=%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(n)))
            for i in range(n):
                self.assertEqual(json.loads(c.read_response().body)["query"], "n=%d" % i)

    def test_http10_closes(self):
        with Conn(self.port) as c:
            c.send(b"GET /hello HTTP/1.0\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.version, "HTTP/1.0")
            self.assertEqual(r.body, b"hello")
            self.assertNotEqual((r.header("Connection") or "").lower(), "keep-alive")
            self.assertIsNotNone(c.wait_closed(2.0), "HTTP/1.0 connection not closed")

    def test_http10_keep_alive(self):
        with Conn(self.port) as c:
            for i in range(3):
                c.send(b"GET /echo?i=%d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % i)
                r = c.read_response()
                self.assertEqual(r.status, 200)
                self.assertEqual(r.header("Connection", "").lower(), "keep-alive")
                self.assertIsNotNone(r.header("Content-Length"))
                self.assertEqual(json.loads(r.body)["version"], "HTTP/1.0")
            self.assertTrue(c.is_open(0.3), "HTTP/1.0 keep-alive connection was closed")

    def test_http11_connection_close(self):
        with Conn(self.port) as c:
            c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("Connection", "").lower(), "close")
            self.assertIsNotNone(c.wait_closed(2.0), "Connection: close not honoured")

    def test_pipelined_after_close_is_ignored(self):
        # A request pipelined after "Connection: close" is not answered.
        with Conn(self.port) as c:
            c.send(b"GET /echo?n=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                   b"GET /echo?n=2 HTTP/1.1\r\nHost: x\r\n\r\n")
            r = c.read_response()
            self.assertEqual(json.loads(r.body)["query"], "n=1")
            self.assertIsNotNone(c.wait_closed(3.0))
            self.assertEqual(c.buf, b"")

    # ---- HEAD, Expect, chunked ----------------------------------------

    def test_head_has_headers_no_body(self):
        with Conn(self.port) as c:
            # HEAD then GET pipelined: if the HEAD answer carried a body,
            # the GET's status line would not come next.
            c.send(b"HEAD /head HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            r = c.read_response("HEAD")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("Content-Length"), "12")
            self.assertEqual(r.header("X-Method"), "HEAD")
            self.assertEqual(r.header("Content-Type"), "text/plain")
            self.assertTrue(c.buf == b"" or c.buf.startswith(b"HTTP/1.1 200"), c.buf[:50])
            r2 = c.read_response()
            self.assertEqual(r2.body, b"hello")

    def test_head_with_http_client(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            c.request("HEAD", "/big")
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.getheader("Content-Length"), str(1 << 20))
            self.assertEqual(r.read(), b"")
            c.request("GET", "/hello")
            self.assertEqual(c.getresponse().read(), b"hello")
        finally:
            c.close()

    def test_expect_100_continue(self):
        with Conn(self.port) as c:
            body = b"x" * 5000
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                   b"Expect: 100-continue\r\n\r\n" % len(body))
            interim = c.read_until(b"\r\n\r\n")
            self.assertEqual(interim, b"HTTP/1.1 100 Continue\r\n\r\n")
            c.send(body)
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertEqual(json.loads(r.body)["sha1"], sha1(body))
            # and the connection carries on
            self.assertEqual(c.request("GET", "/hello").body, b"hello")

    def test_expect_100_continue_curl(self):
        body = os.urandom(3000)
        p = subprocess.run(["curl", "-sS", "-m", "5", "-H", "Expect: 100-continue",
                            "--expect100-timeout", "4", "-H", "Content-Type: application/octet-stream",
                            "--data-binary", "@-", "-v", "http://127.0.0.1:%d/echo" % self.port],
                           input=body, capture_output=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"HTTP/1.1 100 Continue", p.stderr)
        self.assertEqual(json.loads(p.stdout)["sha1"], sha1(body))

    def test_expect_unknown_is_417(self):
        r = raw_request(self.port, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                   b"Expect: something-else\r\n\r\nhi", read_timeout=3)
        self.assertEqual(status_of(r), 417, r)

    def test_chunked_request_body(self):
        parts = [b"hello ", b"chunked ", os.urandom(4096), b"world"]
        body = b"".join(parts)
        wire = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
        with Conn(self.port) as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            # in several writes, split mid-chunk
            for i in range(0, len(wire), 1000):
                c.send(wire[i:i + 1000])
                time.sleep(0.002)
            r = c.read_response()
            got = json.loads(r.body)
            self.assertEqual(got["sha1"], sha1(body))
            self.assertEqual(got["body_len"], len(body))
            # chunk extensions and trailers are accepted
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n")
            self.assertEqual(json.loads(c.read_response().body)["sha1"], sha1(b"abc"))

    def test_chunked_request_http_client(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            parts = [os.urandom(n) for n in (1, 100, 10000, 3)]
            c.request("PUT", "/echo", body=iter(parts), encode_chunked=True,
                      headers={"Transfer-Encoding": "chunked"})
            got = json.loads(c.getresponse().read())
            self.assertEqual(got["method"], "PUT")
            self.assertEqual(got["sha1"], sha1(b"".join(parts)))
        finally:
            c.close()

    def test_large_request_body(self):
        body = os.urandom(3 << 20)
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            c.request("POST", "/echo", body=body)
            got = json.loads(c.getresponse().read())
            self.assertEqual((got["body_len"], got["sha1"]), (len(body), sha1(body)))
        finally:
            c.close()

    # ---- response headers ---------------------------------------------

    def test_date_and_server_headers(self):
        status, headers, _ = get(self.port, "/hello")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Server"], "gust/0.1.0")
        date = email.utils.parsedate_to_datetime(headers["Date"])
        self.assertLess(abs(date.timestamp() - time.time()), 5)
        self.assertTrue(headers["Date"].endswith(" GMT"))
        self.assertEqual(len(headers.get_all("Date")), 1)
        self.assertEqual(len(headers.get_all("Server")), 1)

    def test_default_content_type(self):
        _, headers, body = get(self.port, "/default-ctype")
        self.assertEqual(headers.get_all("Content-Type"), ["text/html; charset=UTF-8"])
        self.assertEqual(headers["Content-Length"], str(len(body)))
        _, headers, _ = get(self.port, "/hello")
        self.assertEqual(headers.get_all("Content-Type"), ["text/plain"])

    def test_repeated_response_headers(self):
        _, headers, _ = get(self.port, "/multi-header")
        self.assertEqual(headers.get_all("X-Multi"), ["a", "b"])
        self.assertEqual(headers.get_all("Set-Cookie"), ["c1=1", "c2=2"])

    def test_request_headers_order_and_repeats(self):
        with Conn(self.port) as c:
            r = c.request("GET", "/echo?a=1&b=2", headers=[("X-Rep", "one"), ("x-REP", "two"),
                                                           ("X-Empty", "")])
            got = json.loads(r.body)
            hs = [tuple(h) for h in got["headers"]]
            self.assertIn(("x-rep", "one"), hs)
            self.assertLess(hs.index(("x-rep", "one")), hs.index(("x-rep", "two")))
            self.assertIn(("x-empty", ""), hs)
            self.assertEqual((got["path"], got["query"], got["uri"]),
                             ("/echo", "a=1&b=2", "/echo?a=1&b=2"))
            self.assertEqual(got["remote_ip"], "127.0.0.1")
            self.assertEqual(got["protocol"], "http")

    def test_path_and_query_split(self):
        with Conn(self.port) as c:
            got = json.loads(c.request("GET", "/echo").body)
            self.assertEqual((got["path"], got["query"]), ("/echo", ""))
            got = json.loads(c.request("GET", "/echo?").body)
            self.assertEqual((got["path"], got["query"]), ("/echo", ""))
            got = json.loads(c.request("GET", "/echo?x=%20y&z").body)
            self.assertEqual(got["query"], "x=%20y&z")
            # absolute-form target: path without scheme and host
            got = json.loads(c.request("GET", "http://example.com/echo?q=1").body)
            self.assertEqual((got["path"], got["query"]), ("/echo", "q=1"))

    def test_etag_and_304(self):
        with Conn(self.port) as c:
            r = c.request("GET", "/etag")
            etag = r.header("Etag")
            self.assertTrue(etag and etag.startswith('"') and etag.endswith('"'), r.headers)
            r2 = c.request("GET", "/etag")
            self.assertEqual(r2.header("Etag"), etag, "ETag is not stable")
            r3 = c.request("GET", "/etag", headers=[("If-None-Match", etag)])
            self.assertEqual(r3.status, 304)
            self.assertEqual(r3.body, b"")
            self.assertIsNone(r3.header("Content-Length"))
            self.assertEqual(r3.header("Etag"), etag)
            # a list that contains it, and a weak form
            r4 = c.request("GET", "/etag", headers=[("If-None-Match", '"nope", %s' % etag)])
            self.assertEqual(r4.status, 304)
            r5 = c.request("GET", "/etag", headers=[("If-None-Match", "W/" + etag)])
            self.assertEqual(r5.status, 304)
            r6 = c.request("GET", "/etag", headers=[("If-None-Match", '"other"')])
            self.assertEqual((r6.status, r6.body), (200, b"a body with an etag"))
            # the 304 did not leave a body on the wire: this parses cleanly
            self.assertEqual(c.request("GET", "/hello").body, b"hello")

    def test_status_without_body(self):
        with Conn(self.port) as c:
            for code in (204, 304):
                c.send(b"GET /status/%d?body=should-not-appear HTTP/1.1\r\nHost: x\r\n\r\n" % code)
                r = c.read_response()
                self.assertEqual(r.status, code)
                self.assertIsNone(r.header("Content-Length"))
                self.assertIsNone(r.header("Transfer-Encoding"))
                self.assertEqual(r.header("X-Status"), str(code))
            # nothing stray left on the wire
            r = c.request("GET", "/hello")
            self.assertEqual(r.body, b"hello")
            self.assertEqual(c.buf, b"")

    def test_other_statuses(self):
        with Conn(self.port) as c:
            for code, reason in ((201, "Created"), (404, "Not Found"), (503, "Service Unavailable")):
                r = c.request("GET", "/status/%d?body=abc" % code)
                self.assertEqual((r.status, r.reason, r.body), (code, reason, b"abc"))
            r = c.request("GET", "/status/299")
            self.assertEqual(r.status, 299)
            self.assertTrue(r.reason)

    # ---- streaming ----------------------------------------------------

    def test_flush_streams_over_time(self):
        with Conn(self.port) as c:
            c.send(b"GET /stream?n=3&delay=0.4 HTTP/1.1\r\nHost: x\r\n\r\n")
            t0 = time.monotonic()
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("Transfer-Encoding"), "chunked")
            self.assertIsNone(r.header("Content-Length"))
            lines = r.body.decode().splitlines()
            self.assertEqual(len(lines), 4, lines)
            self.assertEqual(lines[-1], "end")
            times = [t for t, _ in r.chunk_times]
            first = times[0]
            last = [t for t, d in r.chunk_times if b"chunk 3" in d][0]
            self.assertGreater(last - first, 0.6, "chunks were not sent as flushed")
            self.assertLess(first - t0, 0.3, "the first chunk was held back")
            # the keep-alive connection is still usable after a chunked answer
            self.assertEqual(c.request("GET", "/hello").body, b"hello")

    def test_first_chunk_before_last_is_produced(self):
        with Conn(self.port) as c:
            c.send(b"GET /stream?n=3&delay=0.4 HTTP/1.1\r\nHost: x\r\n\r\n")
            c.read_head()
            line = c.read_until(b"\r\n")
            size = int(line, 16)
            chunk1 = c.read_exact(size + 2)
            got_first_at = time.time()
            self.assertTrue(chunk1.startswith(b"chunk 1 at"))
            rest = c.read_until(b"0\r\n\r\n")
            produced3 = float(re.search(rb"chunk 3 at ([\d.]+)", rest).group(1))
            self.assertLess(got_first_at, produced3)

    def test_finish_after_flush_with_nil_status(self):
        # contract: a finish() after flush() ignores its status and headers
        with Conn(self.port, timeout=3) as c:
            c.send(b"GET /flush-then-finish-nil HTTP/1.1\r\nHost: x\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.body, b"first\nsecond\nlast\n")

    def test_flush_http10_is_close_delimited(self):
        with Conn(self.port) as c:
            c.send(b"GET /stream?n=2&delay=0.1 HTTP/1.0\r\n\r\n")
            r = c.read_response()
            self.assertIsNone(r.header("Transfer-Encoding"))
            self.assertIsNone(r.header("Content-Length"))
            self.assertRegex(r.body, rb"^chunk 1 at [\d.]+\nchunk 2 at [\d.]+\nend\n$")
            self.assertTrue(c.eof)

    def test_flush_with_curl(self):
        p = subprocess.run(["curl", "-sS", "-m", "5", "-N",
                            "http://127.0.0.1:%d/stream?n=3&delay=0.05" % self.port],
                           capture_output=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.count(b"chunk "), 3)
        self.assertTrue(p.stdout.endswith(b"end\n"))

    # ---- errors -------------------------------------------------------

    def test_handler_error_is_500(self):
        with Conn(self.port) as c:
            r = c.request("GET", "/error")
            self.assertEqual(r.status, 500)
            self.assertNotIn(b"boom", r.body)  # no traceback on the wire
            self.assertNotIn(b"raw.lua", r.body)
        self.assertEqual(get(self.port, "/hello")[2], b"hello")
        self.assertTrue(self.server.wait_stderr(r"boom from the raw handler"))
        # and many in a row do not hurt
        for _ in range(20):
            self.assertEqual(get(self.port, "/error")[0], 500)
        self.assertEqual(get(self.port, "/hello")[0], 200)

    def test_error_after_flush_ends_connection(self):
        # The head is out; the response cannot be completed correctly, so
        # the connection must end (an incomplete chunked body tells the
        # client) instead of hanging forever.
        with Conn(self.port, timeout=5) as c:
            c.send(b"GET /error-after-flush HTTP/1.1\r\nHost: x\r\n\r\n")
            c.read_head()
            t = c.wait_closed(3.0)
            self.assertIsNotNone(t, "connection left hanging after an error following flush()")
            self.assertIn(b"partial", c.buf)
            self.assertFalse(c.buf.endswith(b"0\r\n\r\n"),
                             "a failed response must not look complete")
        self.assertEqual(get(self.port, "/hello")[0], 200)

    def test_unknown_route_404(self):
        self.assertEqual(get(self.port, "/nope")[0], 404)

    # ---- output buffering ---------------------------------------------

    def _slow_read_big(self, path):
        with Conn(self.port, timeout=10, rcvbuf=8192) as c:
            c.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
            time.sleep(0.5)  # let the server fill the socket and wait
            version, status, reason, headers, head = c.read_head()
            hmap = dict((k.lower(), v) for k, v in headers)
            n = int(hmap["content-length"])
            self.assertEqual(n, 1 << 20)
            got = bytearray(c.buf)
            c.buf = b""
            i = 0
            while len(got) < n:
                data = c.sock.recv(min(8192, n - len(got)))
                self.assertTrue(data, "closed after %d bytes" % len(got))
                got += data
                i += 1
                if i % 16 == 0:
                    time.sleep(0.01)
            self.assertEqual(sha1(bytes(got)), hmap["x-sha1"])
            lines = bytes(got).split(b"\n")
            self.assertEqual(lines[16383][:8], b"00016383")
            # still serving on the same connection
            self.assertEqual(c.request("GET", "/hello").body, b"hello")

    def test_big_body_slow_reader(self):
        self._slow_read_big("/big")

    def test_big_body_parts_slow_reader(self):
        self._slow_read_big("/big-parts")

    def test_big_body_curl(self):
        p = subprocess.run(["curl", "-sS", "-m", "10", "-D", "-", "--limit-rate", "4M",
                            "http://127.0.0.1:%d/big" % self.port], capture_output=True, timeout=15)
        self.assertEqual(p.returncode, 0, p.stderr)
        head, _, body = p.stdout.partition(b"\r\n\r\n")
        want = re.search(rb"X-Sha1: (\w+)", head).group(1).decode()
        self.assertEqual(sha1(body), want)

    def test_other_clients_served_while_one_reads_slowly(self):
        with Conn(self.port, timeout=10, rcvbuf=4096) as slow:
            slow.send(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.2)
            t0 = time.monotonic()
            for _ in range(5):
                self.assertEqual(get(self.port, "/hello")[2], b"hello")
            self.assertLess(time.monotonic() - t0, 1.0)

    # ---- client goes away ---------------------------------------------

    def _closes(self):
        return json.loads(get(self.port, "/closes")[2])

    def _wait_closes(self, pred, timeout=3.0):
        deadline = time.monotonic() + timeout
        while True:
            st = self._closes()
            if pred(st) or time.monotonic() > deadline:
                return st
            time.sleep(0.05)

    def test_close_hook_on_disconnect(self):
        before = self._closes()
        c = Conn(self.port)
        c.send(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
        self._wait_closes(lambda st: st["forever_started"] > before["forever_started"])
        c.close()
        st = self._wait_closes(lambda st: st["closes"] > before["closes"] and
                               st["forever_done"] > before["forever_done"])
        self.assertEqual(st["closes"], before["closes"] + 1)
        self.assertEqual(st["forever_done"], before["forever_done"] + 1)
        # the adopt hook named it when its first run ended with it open
        # (the /closes requests themselves finish in theirs)
        self.assertEqual(st["adopts"], before["adopts"] + 1)

    def test_close_hook_on_reset(self):
        before = self._closes()
        c = Conn(self.port)
        c.send(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
        self._wait_closes(lambda st: st["forever_started"] > before["forever_started"])
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()  # RST
        st = self._wait_closes(lambda st: st["closes"] > before["closes"] and
                               st["forever_done"] > before["forever_done"])
        self.assertEqual(st["closes"], before["closes"] + 1)
        self.assertEqual(st["forever_done"], before["forever_done"] + 1)

    def test_close_hook_many(self):
        before = self._closes()
        conns = [Conn(self.port) for _ in range(10)]
        for c in conns:
            c.send(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
        self._wait_closes(lambda st: st["forever_started"] >= before["forever_started"] + 10)
        for c in conns:
            c.close()
        st = self._wait_closes(lambda st: st["forever_done"] >= before["forever_done"] + 10)
        self.assertEqual(st["closes"], before["closes"] + 10)
        self.assertEqual(st["forever_done"], before["forever_done"] + 10)

    def test_no_close_hook_for_finished_requests(self):
        before = self._closes()
        for _ in range(5):
            with Conn(self.port) as c:
                c.request("GET", "/hello")
        with Conn(self.port) as c:  # closed while idle between requests
            c.request("GET", "/hello")
        time.sleep(0.2)
        self.assertEqual(self._closes()["closes"], before["closes"])
        self.assertEqual(self._closes()["adopts"], before["adopts"])

    def test_half_closed_client_still_answered(self):
        # a client that sends its request and shuts down its sending side
        # (nc -q, some HTTP/1.0 tools) still gets the whole answer
        raw = raw_request(self.port, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", shutdown=True,
                          read_timeout=3)
        self.assertEqual(status_of(raw), 200)
        self.assertTrue(raw.endswith(b"hello"), raw)
        raw = raw_request(self.port, b"GET /sleep?n=0.2 HTTP/1.1\r\nHost: x\r\n\r\n", shutdown=True,
                          read_timeout=3)
        self.assertEqual(status_of(raw), 200)
        self.assertIn(b"slept", raw)

    def test_request_and_fin_in_one_segment_close_after_the_answer(self):
        # The second request and the client's FIN arrive together (TCP_CORK
        # holds the request back until shutdown() adds the FIN to it): the
        # answer comes, then the close, not an idle keep-alive connection
        # that waits for the idle timeout.
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            first = s.recv(4096)
            self.assertEqual(status_of(first), 200)
            time.sleep(0.1)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            s.shutdown(socket.SHUT_WR)
            s.settimeout(2)
            raw = b""
            try:
                while True:
                    data = s.recv(4096)
                    if not data:
                        break
                    raw += data
            except socket.timeout:
                self.fail("no close within 2 s after the answer: %r" % raw)
            self.assertEqual(status_of(raw), 200)
            self.assertTrue(raw.endswith(b"hello"), raw)

    def test_client_aborts_during_big_response(self):
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(1000)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
        self.assertEqual(get(self.port, "/hello")[2], b"hello")

    def test_client_aborts_mid_body(self):
        for _ in range(10):
            with Conn(self.port) as c:
                c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000)
        self.assertEqual(get(self.port, "/hello")[2], b"hello")

    def test_many_open_connections(self):
        conns = []
        try:
            for _ in range(300):
                conns.append(socket.create_connection(("127.0.0.1", self.port), timeout=5))
            for s in conns[::30]:
                s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            t0 = time.monotonic()
            self.assertEqual(get(self.port, "/hello")[2], b"hello")
            self.assertLess(time.monotonic() - t0, 1.0)
            for s in conns[::30]:
                self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 200"))
        finally:
            for s in conns:
                s.close()

    # ---- concurrency --------------------------------------------------

    def test_concurrent_sleepers(self):
        n = 50
        results = [None] * n

        def one(i):
            try:
                results[i] = get(self.port, "/sleep?n=0.5", timeout=5)[0]
            except Exception as e:  # noqa
                results[i] = repr(e)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        elapsed = time.monotonic() - t0
        self.assertEqual(results, [200] * n)
        self.assertLess(elapsed, 2.0)


class RequestAPIMisuseTest(unittest.TestCase):
    """Wrong arguments to req:finish/flush/send_file raise a Lua error: the
    request becomes a 500 and nothing leaks (connection, header buffer,
    file descriptor). Under the sanitizer build, stop() fails on a
    LeakSanitizer report."""

    def run_misuse(self, kinds, n=10):
        s = Server("raw.lua")
        try:
            pid = s.proc.pid
            self.assertEqual(get(s.port, "/hello")[0], 200)
            fds_before = len(os.listdir("/proc/%d/fd" % pid))
            for kind in kinds:
                for _ in range(n):
                    raw = raw_request(s.port, b"GET /misuse/%s HTTP/1.1\r\nHost: x\r\n"
                                              b"Connection: close\r\n\r\n" % kind.encode(),
                                      read_timeout=3)
                    self.assertEqual(status_of(raw), 500, (kind, raw[:100]))
            self.assertEqual(get(s.port, "/hello")[0], 200)
            time.sleep(0.2)
            fds_after = len(os.listdir("/proc/%d/fd" % pid))
            self.assertLessEqual(fds_after, fds_before + 1, "file descriptors leaked")
        finally:
            s.stop()  # asserts no sanitizer report

    def test_bad_header_in_finish(self):
        self.run_misuse(["header-value", "header-name"])

    def test_bad_body_part_and_status(self):
        self.run_misuse(["body-part", "status"])

    def test_bad_header_in_flush(self):
        self.run_misuse(["flush-header"])

    def test_bad_header_in_send_file(self):
        self.run_misuse(["send-file-header"])

    def test_send_file(self):
        with Server("raw.lua") as s:
            with Conn(s.port) as c:
                r = c.request("GET", "/send-file")
                self.assertEqual(len(r.body), 100)
                self.assertEqual(hashlib.sha1(r.body).hexdigest(), r.header("X-Sha1"))
                self.assertEqual(r.header("Content-Length"), "100")
                r = c.request("HEAD", "/send-file")
                self.assertEqual((r.header("Content-Length"), r.body), ("100", b""))
                self.assertEqual(c.request("GET", "/hello").body, b"hello")


class ProcessTest(unittest.TestCase):
    """Start, stop and command-line behaviour."""

    def run_gust(self, *args, timeout=10):
        return subprocess.run([GUST_BIN, *args], capture_output=True, timeout=timeout, cwd=ROOT)

    def test_sigterm_is_graceful(self):
        s = Server("raw.lua")
        try:
            result = {}

            def slow():
                try:
                    with Conn(s.port, timeout=5) as c:
                        result["r"] = c.request("GET", "/sleep?n=1")
                        result["closed"] = c.wait_closed(2.0)
                except Exception as e:  # noqa
                    result["err"] = repr(e)

            idle = Conn(s.port)
            self.assertEqual(idle.request("GET", "/hello").status, 200)
            t = threading.Thread(target=slow)
            t.start()
            time.sleep(0.3)
            t0 = time.monotonic()
            s.proc.send_signal(signal.SIGTERM)
            # the idle keep-alive connection is closed after a short grace
            # (DESIGN §2: a client may be sending its next request right then)
            self.assertIsNotNone(idle.wait_closed(2.5), "idle connection not closed on SIGTERM")
            idle.close()
            # no new connections are accepted
            time.sleep(0.1)
            with self.assertRaises(OSError):
                socket.create_connection(("127.0.0.1", s.port), timeout=1).close()
            t.join(5)
            self.assertNotIn("err", result, result.get("err"))
            r = result["r"]
            self.assertEqual(r.status, 200)
            self.assertTrue(r.body.startswith(b"slept"))
            self.assertEqual(r.header("Connection", "").lower(), "close")
            self.assertIsNotNone(result["closed"])
            s.proc.wait(5)
            self.assertLess(time.monotonic() - t0, 3.0, "exit waited for the drain timeout")
        finally:
            rc = s.stop()
        self.assertEqual(rc, 0)

    def test_sigterm_right_after_start_line(self):
        # A supervisor may signal as soon as it has read the start line:
        # the signal handlers must already be in place by then.
        codes = []
        for _ in range(5):
            s = Server("raw.lua")
            s.proc.send_signal(signal.SIGTERM)
            try:
                s.proc.wait(5)
            finally:
                codes.append(s.stop(check=False))
        self.assertEqual(codes, [0] * 5)

    def test_two_quick_signals_exit_0(self):
        # "a second signal stops at once ... exit status 0": also when the
        # second one lands while the first is already shutting down
        codes = []
        for _ in range(10):
            s = Server("raw.lua")
            self.assertEqual(get(s.port, "/hello")[0], 200)
            s.proc.send_signal(signal.SIGTERM)
            time.sleep(0.002)
            if s.proc.poll() is None:
                s.proc.send_signal(signal.SIGTERM)
            try:
                s.proc.wait(5)
            finally:
                codes.append(s.stop(check=False))
        self.assertEqual(codes, [0] * 10)

    def test_sigint_idle_exits_0(self):
        s = Server("raw.lua")
        self.assertEqual(get(s.port, "/hello")[0], 200)
        self.assertEqual(s.stop(sig=signal.SIGINT), 0)

    def test_second_signal_stops_at_once(self):
        s = Server("raw.lua")
        try:
            c = Conn(s.port)
            c.send(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.2)
            s.proc.send_signal(signal.SIGTERM)
            time.sleep(0.2)
            self.assertIsNone(s.proc.poll(), "exited without draining the in-flight request")
            t0 = time.monotonic()
            s.proc.send_signal(signal.SIGTERM)
            s.proc.wait(3)
            self.assertLess(time.monotonic() - t0, 2)
            c.close()
        finally:
            rc = s.stop()
        self.assertEqual(rc, 0)

    def test_drain_timeout(self):
        s = Server("raw.lua", "--drain-timeout", "0.5")
        try:
            c = Conn(s.port)
            c.send(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.2)
            t0 = time.monotonic()
            s.proc.send_signal(signal.SIGTERM)
            s.proc.wait(5)
            self.assertLess(time.monotonic() - t0, 2.5)
            self.assertIsNotNone(c.wait_closed(1))
            c.close()
        finally:
            rc = s.stop()
        self.assertEqual(rc, 0)
        self.assertIn("drain timeout", s.stderr())

    def test_check_good_app(self):
        p = self.run_gust("--check", os.path.join(APPS, "raw.lua"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, b"")

    def test_check_syntax_error(self):
        p = self.run_gust("--check", os.path.join(APPS, "broken_syntax.lua"))
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stderr.decode(), r"broken_syntax\.lua:4:")

    def test_check_error_at_load(self):
        p = self.run_gust("--check", os.path.join(APPS, "broken_runtime.lua"))
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stderr.decode(), r"broken_runtime\.lua:3:")

    def test_check_missing_file(self):
        p = self.run_gust("--check", "/nonexistent/app.lua")
        self.assertEqual(p.returncode, 1)
        self.assertIn("app.lua", p.stderr.decode())

    def test_serving_broken_app_exits_1(self):
        p = self.run_gust("--port", "0", os.path.join(APPS, "broken_syntax.lua"))
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stderr.decode(), r"broken_syntax\.lua:4:")

    def test_version(self):
        p = self.run_gust("--version")
        self.assertEqual(p.returncode, 0)
        self.assertEqual(p.stdout.decode().strip(), "gust 0.1.0")

    def test_help(self):
        p = self.run_gust("--help")
        self.assertEqual(p.returncode, 0)
        out = p.stdout.decode()
        for opt in ("--port", "--bind", "--unix", "--workers", "--check", "--version"):
            self.assertIn(opt, out)

    def test_bad_usage(self):
        self.assertNotEqual(self.run_gust().returncode, 0)
        self.assertNotEqual(self.run_gust("--no-such-option", "x.lua").returncode, 0)
        self.assertNotEqual(self.run_gust("--port", "notaport", "x.lua").returncode, 0)

    def test_start_line(self):
        s = Server("raw.lua")
        try:
            self.assertRegex(s.start_line,
                             r"^gust 0\.1\.0 listening on http://127\.0\.0\.1:%d \(1 worker\)$" % s.port)
            get(s.port, "/hello")  # (stopping at once is test_sigterm_right_after_start_line)
        finally:
            self.assertEqual(s.stop(), 0)

    def test_port_in_use(self):
        s = Server("raw.lua")
        try:
            p = self.run_gust("--port", str(s.port), os.path.join(APPS, "raw.lua"))
            self.assertNotEqual(p.returncode, 0)
            self.assertIn(str(s.port), p.stderr.decode())
        finally:
            self.assertEqual(s.stop(), 0)

    def test_unix_socket(self):
        d = tempfile.mkdtemp(prefix="gust-unix-")
        path = os.path.join(d, "gust.sock")
        s = Server("raw.lua", "--unix", path)
        try:
            self.assertIn(path, s.start_line)
            self.assertTrue(os.path.exists(path))
            with Conn(unix=path) as c:
                r = c.request("GET", "/echo?via=unix")
                got = json.loads(r.body)
                self.assertEqual(got["query"], "via=unix")
                self.assertEqual(got["remote_ip"], "unix")
                self.assertEqual(c.request("GET", "/hello").body, b"hello")
            p = subprocess.run(["curl", "-sS", "-m", "5", "--unix-socket", path,
                                "http://localhost/hello"], capture_output=True, timeout=10)
            self.assertEqual(p.stdout, b"hello", p.stderr)
        finally:
            rc = s.stop()
            self.assertEqual(rc, 0)
            self.assertFalse(os.path.exists(path), "unix socket left behind")
            shutil.rmtree(d, ignore_errors=True)

    def test_self_listening_app(self):
        s = Server("selflisten.lua")
        try:
            self.assertIn("selflisten: listening", s.start_line)
            with Conn(s.port) as c:
                self.assertEqual(c.request("GET", "/a").body, b"self-listening GET /a #1")
                self.assertEqual(c.request("POST", "/b", body=b"x").body,
                                 b"self-listening POST /b #2")
        finally:
            self.assertEqual(s.stop(), 0)


if __name__ == "__main__":
    unittest.main()

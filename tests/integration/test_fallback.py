"""Hosting other applications (DESIGN §4.6) through the real binary:
gust.wsapi's WSAPIContainer behind web.FallbackHandler mixed with native
handlers (apps/fallback_app.lua, and the example apps/fallback), and
web.ProxyHandler in front of a Python http.server upstream that the test
starts on a free loopback port (apps/proxy too)."""
import gzip
import http.client
import http.server
import json
import os
import socket
import threading
import time
import unittest

from gusttest import ROOT, Conn, Server, get, raw_request


def request(port, method, path, body=None, headers=None, timeout=10):
    """One request on a new http.client connection -> (status, reason, headers, body)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.reason, r.headers, r.read()
    finally:
        c.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- the Python upstream ------------------------------------------------------

class Upstream(http.server.BaseHTTPRequestHandler):
    """Answers what each test needs. Every request it sees is recorded."""
    protocol_version = "HTTP/1.1"
    seen = []

    def log_message(self, *args):  # quiet
        pass

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status, body=b"", headers=(), reason=None):
        self.send_response(status, reason)
        for k, v in headers:
            self.send_header(k, v)
        if not any(k.lower() == "content-length" for k, _ in headers):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self):
        body = self._body()
        Upstream.seen.append((self.command, self.path, self.headers.items(), body))
        path = self.path
        if path.startswith("/proxy/echo") or path.startswith("/proxy/methods"):
            report = {"method": self.command, "path": path, "body": body.decode("latin-1"),
                      "headers": [[k, v] for k, v in self.headers.items()]}
            self._send(200, json.dumps(report).encode(), [
                ("Content-Type", "application/json"),
                ("X-Upstream", "python"),
                ("Set-Cookie", "u=1; Path=/"),
                ("Set-Cookie", "v=2; Path=/"),
                ("Keep-Alive", "timeout=5"),
                ("Connection", "X-Private"),
                ("X-Private", "hop-by-hop, dropped"),
                ("Proxy-Agent", "python"),
            ])
        elif path.startswith("/proxy/status/"):
            code = int(path.rsplit("/", 1)[1])
            self._send(code, b"" if code in (204, 304) else b"teapot says hi",
                       [("Content-Type", "text/plain")], reason="Custom Reason")
        elif path == "/proxy/redirect":
            self._send(302, b"moved", [("Location", "/proxy/elsewhere")])
        elif path == "/proxy/gzip":
            data = gzip.compress(b"squeeze me " * 1000)
            self._send(200, data, [("Content-Type", "text/plain"), ("Content-Encoding", "gzip"),
                                   ("Vary", "Accept-Encoding")])
        elif path.startswith("/proxy/big"):
            size = 4 * 1024 * 1024
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            block = bytes(range(256)) * 256  # 64 KiB
            for _ in range(size // len(block)):
                self.wfile.write(block)
        elif path == "/proxy/truncated":
            # Promises 1 MiB, sends 128 KiB, hangs up.
            self.send_response(200)
            self.send_header("Content-Length", str(1024 * 1024))
            self.end_headers()
            self.wfile.write(b"t" * 131072)
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif path == "/proxy/chunked":
            # Streamed: a first chunk, a pause, the rest.
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i, part in enumerate([b"first;", b"second;", b"third;"]):
                if i:
                    time.sleep(0.4)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        elif path.startswith("/slowproxy/"):
            time.sleep(2)
            self._send(200, b"too late")
        elif self.command == "HEAD":
            self._send(200, b"", [("Content-Length", "4321"), ("Content-Type", "text/plain")])
        else:
            self._send(404, b"python has no " + path.encode())

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _handle


class QuietHTTPServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # gust hanging up on /slowproxy/ (its 504) is expected


class UpstreamServer:
    def __init__(self):
        self.httpd = QuietHTTPServer(("127.0.0.1", 0), Upstream)
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# ---- the WSAPI app and native routes ------------------------------------------

class FallbackTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.upstream = UpstreamServer()
        cls.server = Server("fallback_app.lua", env={
            "UPSTREAM": cls.upstream.url,
            "DEAD_UPSTREAM": "http://127.0.0.1:%d" % free_port(),
        })
        cls.port = cls.server.port

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.upstream.stop()

    def env(self, path, **kw):
        status, _, headers, body = request(self.port, kw.pop("method", "GET"), path, **kw)
        self.assertEqual(status, 200, body)
        return json.loads(body)

    def test_env_variables(self):
        env = self.env("/env?a=1&b=%20two", headers={
            "X-Custom": "custom value", "Accept": "text/x-test", "Cookie": "c=1",
            "X_Under": "dropped"})
        self.assertEqual(env["REQUEST_METHOD"], "GET")
        self.assertEqual(env["SCRIPT_NAME"], "")
        self.assertEqual(env["PATH_INFO"], "/env")
        self.assertEqual(env["QUERY_STRING"], "a=1&b=%20two")
        self.assertEqual(env["REQUEST_URI"], "/env?a=1&b=%20two")
        self.assertEqual(env["SERVER_NAME"], "127.0.0.1")
        self.assertEqual(env["SERVER_PORT"], str(self.port))
        self.assertEqual(env["SERVER_PROTOCOL"], "HTTP/1.1")
        self.assertEqual(env["SERVER_SOFTWARE"], "gust/0.1.0")
        self.assertEqual(env["GATEWAY_INTERFACE"], "CGI/1.1")
        self.assertEqual(env["REMOTE_ADDR"], "127.0.0.1")
        self.assertEqual(env["HTTP_HOST"], "127.0.0.1:%d" % self.port)
        self.assertEqual(env["HTTP_X_CUSTOM"], "custom value")
        self.assertEqual(env["HTTP_ACCEPT"], "text/x-test")
        self.assertEqual(env["HTTP_COOKIE"], "c=1")
        self.assertEqual(env["HTTP_X_UNDER"], "")  # underscores: not passed
        self.assertEqual(env["CONTENT_TYPE"], "")
        self.assertEqual(env["CONTENT_LENGTH"], "")
        self.assertEqual(env["HTTPS"], "")
        self.assertEqual(env["UNDEFINED_THING"], "")
        self.assertTrue(env["APP_PATH"].endswith("tests/integration/apps"), env["APP_PATH"])

    def test_repeated_headers_are_joined(self):
        with Conn(self.port) as c:
            r = c.request("GET", "/env", headers=[("X-Twice", "one"), ("X-Twice", "two"),
                                                  ("Cookie", "a=1"), ("Cookie", "b=2")])
        env = json.loads(r.body)
        self.assertEqual(env["HTTP_X_TWICE"], "one, two")
        self.assertEqual(env["HTTP_COOKIE"], "a=1; b=2")

    def test_script_name_and_path_info(self):
        env = self.env("/legacy/env?x=y")
        self.assertEqual((env["SCRIPT_NAME"], env["PATH_INFO"], env["QUERY_STRING"]),
                         ("/legacy", "/env", "x=y"))
        status, _, _, body = request(self.port, "GET", "/legacy")
        self.assertEqual((status, body), (404, b"legacy: no /"))
        status, _, _, body = request(self.port, "GET", "/legacy/caf%C3%A9%20x")
        self.assertEqual(body, "legacy: no /café x".encode())

    def test_post_body_through_input_read(self):
        data = bytes(range(256)) * 40 + b"tail"
        status, _, headers, body = request(self.port, "POST", "/echo", body=data,
                                           headers={"Content-Type": "application/octet-stream"})
        self.assertEqual((status, body), (200, data))
        self.assertEqual(headers["X-Pieces"], str((len(data) + 3) // 4))
        env = self.env("/env", method="PUT", body=b"12345", headers={"Content-Type": "text/x-y"})
        self.assertEqual((env["REQUEST_METHOD"], env["CONTENT_LENGTH"], env["CONTENT_TYPE"]),
                         ("PUT", "5", "text/x-y"))

    def test_chunked_request_body(self):
        with Conn(self.port) as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
            r = c.read_response()
        self.assertEqual((r.status, r.body), (200, b"hello world"))

    def test_form(self):
        status, reason, _, body = request(
            self.port, "POST", "/form", body=b"name=gust+server&lang=Lua%21",
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual((status, reason), (201, "Created"))
        self.assertEqual(json.loads(body), {"name": "gust server", "lang": "Lua!"})

    def test_any_verb_and_no_framework_checks(self):
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND"):
            with Conn(self.port) as c:
                r = c.request(method, "/env", body=b"x=1" if method != "GET" else b"")
            self.assertEqual(r.status, 200, method)
            self.assertEqual(json.loads(r.body)["REQUEST_METHOD"], method)
        # a multipart body the framework could not parse is the app's business
        status, _, _, body = request(self.port, "POST", "/echo", body=b"--zz\r\nnot really",
                                     headers={"Content-Type": "multipart/form-data; boundary=q"})
        self.assertEqual((status, body), (200, b"--zz\r\nnot really"))

    def test_status_string_and_header_lists(self):
        status, reason, headers, body = request(self.port, "GET", "/status")
        self.assertEqual((status, reason, body), (418, "I Am Legacy", b"short and stout"))
        self.assertEqual(headers.get_all("Set-Cookie"), ["a=1", "b=2"])
        self.assertEqual(headers["X-Legacy"], "yes")
        self.assertEqual(headers["Content-Length"], "15")

    def test_head(self):
        with Conn(self.port) as c:
            r = c.request("HEAD", "/status")
            self.assertEqual((r.status, r.header("Content-Length")), (418, "15"))
            r = c.request("GET", "/native")  # the connection carries on
            self.assertEqual(r.status, 200)

    def test_streamed_body(self):
        # 64 chunks of 64 KiB: chunked, and the body as produced
        with Conn(self.port, timeout=10) as c:
            r = c.request("GET", "/stream?n=64&size=65536")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Transfer-Encoding"), "chunked")
        self.assertIsNone(r.header("Content-Length"))
        self.assertEqual(len(r.body), 64 * 65536)
        self.assertEqual(r.body[:3], b"aaa")
        self.assertEqual(r.body[-3:], bytes([96 + (63 % 26) + 1]) * 3)
        # a small body keeps its Content-Length
        with Conn(self.port) as c:
            r = c.request("GET", "/stream?n=3&size=10")
        self.assertEqual((r.header("Content-Length"), r.body), ("30", b"a" * 10 + b"b" * 10 + b"c" * 10))

    def test_stream_reaches_the_client_before_the_iterator_ends(self):
        # 100 KiB chunks (past the 64 KiB buffer) 0.3 s apart: the first
        # arrives long before the last is produced.
        with Conn(self.port, timeout=10) as c:
            t0 = time.monotonic()
            r = c.request("GET", "/stream?n=4&size=102400&delay=0.3")
        self.assertEqual(len(r.body), 4 * 102400)
        first = r.chunk_times[0][0] - t0
        last = r.chunk_times[-1][0] - t0
        self.assertLess(first, 0.25)
        self.assertGreater(last, 0.8)

    def test_error_is_a_logged_500(self):
        status, _, _, body = request(self.port, "GET", "/boom")
        self.assertEqual(status, 500)
        self.assertNotIn(b"exploded", body)  # no traceback without debug
        self.assertTrue(self.server.wait_stderr(r"legacy exploded on purpose"))
        self.assertEqual(get(self.port, "/native")[0], 200)

    def assert_cut_mid_body(self, path):
        # The status is out when the failure comes: the error is logged and
        # the connection cut, so the client never sees the chunked body end.
        raw = raw_request(self.port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                          read_timeout=10)
        self.assertTrue(raw.startswith(b"HTTP/1.1 200"), raw[:80])
        self.assertIn(b"Transfer-Encoding: chunked", raw.split(b"\r\n\r\n", 1)[0])
        self.assertFalse(raw.endswith(b"\r\n0\r\n\r\n"), "the body was ended as if whole")
        return raw

    def test_error_mid_stream_is_logged_and_cuts_the_connection(self):
        self.assert_cut_mid_body(b"/boom-late")
        self.assertTrue(self.server.wait_stderr(r"legacy exploded mid-stream"))
        self.assertEqual(get(self.port, "/native")[0], 200)

    def test_env_error_is_logged(self):
        status, _, _, body = request(self.port, "GET", "/log")
        self.assertEqual((status, body), (200, b"logged"))
        self.assertTrue(self.server.wait_stderr(r"wsapi: legacy wrote to env.error"))

    def test_native_routes_still_served(self):
        status, _, headers, body = request(self.port, "GET", "/native")
        self.assertEqual((status, json.loads(body)), (200, {"native": True, "path": "/native"}))
        status, _, _, body = request(self.port, "POST", "/native", body=b"abc",
                                     headers={"Content-Type": "text/plain"})
        self.assertEqual(json.loads(body), {"native": True, "body": "abc"})
        # /nativex is not /native: the fallback has it
        status, _, _, body = request(self.port, "GET", "/nativex")
        self.assertEqual((status, body), (404, b"legacy: no /nativex"))

    # ---- ProxyHandler --------------------------------------------------------------

    def last_seen(self):
        return Upstream.seen[-1]

    def test_proxy_get_and_post(self):
        status, _, headers, body = request(self.port, "GET", "/proxy/echo/a%20b?x=1&x=2",
                                           headers={"X-Custom": "yes", "User-Agent": "test/1"})
        self.assertEqual(status, 200, body)
        report = json.loads(body)
        self.assertEqual((report["method"], report["path"]), ("GET", "/proxy/echo/a%20b?x=1&x=2"))
        h = {k.lower(): v for k, v in report["headers"]}
        self.assertEqual(h["x-custom"], "yes")
        self.assertEqual(h["user-agent"], "test/1")
        self.assertEqual(h["host"], "127.0.0.1:%d" % self.port)
        self.assertEqual(h["x-forwarded-for"], "127.0.0.1")
        self.assertEqual(h["x-forwarded-proto"], "http")
        self.assertEqual(h["x-forwarded-host"], "127.0.0.1:%d" % self.port)
        self.assertEqual(headers["X-Upstream"], "python")
        data = b"payload \x00\xff" * 1000
        status, _, _, body = request(self.port, "POST", "/proxy/echo", body=data,
                                     headers={"Content-Type": "application/octet-stream"})
        report = json.loads(body)
        self.assertEqual((status, report["method"]), (200, "POST"))
        self.assertEqual(report["body"].encode("latin-1"), data)
        h = {k.lower(): v for k, v in report["headers"]}
        self.assertEqual(h["content-length"], str(len(data)))
        self.assertEqual(h["content-type"], "application/octet-stream")

    def test_proxy_every_verb(self):
        for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
            status, _, _, body = request(self.port, method, "/proxy/methods", body=b"b-" + method.encode())
            report = json.loads(body)
            self.assertEqual((status, report["method"], report["body"]), (200, method, "b-" + method))
        status, _, headers, body = request(self.port, "HEAD", "/proxy/head")
        self.assertEqual((status, headers["Content-Length"], body), (200, "4321", b""))

    def test_proxy_chunked_request_body(self):
        with Conn(self.port) as c:
            c.send(b"POST /proxy/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n")
            r = c.read_response()
        report = json.loads(r.body)
        self.assertEqual(report["body"], "abcdef")
        h = {k.lower(): v for k, v in report["headers"]}
        self.assertEqual(h["content-length"], "6")
        self.assertNotIn("transfer-encoding", h)

    def test_proxy_strips_hop_by_hop_request_headers(self):
        with Conn(self.port) as c:
            r = c.request("GET", "/proxy/echo", headers=[
                ("Connection", "keep-alive, X-Conn-Named"), ("X-Conn-Named", "1"),
                ("Keep-Alive", "timeout=9"), ("Proxy-Authorization", "Basic eA=="),
                ("Proxy-Connection", "keep-alive"), ("TE", "trailers"), ("Upgrade", "h2c"),
                ("X-Kept", "kept"), ("X-Forwarded-For", "203.0.113.7")])
        h = {k.lower(): v for k, v in json.loads(r.body)["headers"]}
        for name in ("x-conn-named", "keep-alive", "proxy-authorization", "proxy-connection",
                     "te", "upgrade"):
            self.assertNotIn(name, h)
        self.assertEqual(h["x-kept"], "kept")
        self.assertEqual(h["x-forwarded-for"], "203.0.113.7, 127.0.0.1")
        self.assertNotEqual(h.get("connection", "").lower(), "keep-alive, x-conn-named")

    def test_proxy_strips_hop_by_hop_response_headers(self):
        with Conn(self.port) as c:
            r = c.request("GET", "/proxy/echo")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header_list("Set-Cookie"), ["u=1; Path=/", "v=2; Path=/"])
        self.assertEqual(r.header("X-Upstream"), "python")
        self.assertIsNone(r.header("Keep-Alive"))
        self.assertIsNone(r.header("X-Private"))  # named by the upstream's Connection
        self.assertIsNone(r.header("Proxy-Agent"))
        self.assertNotIn("x-private", (r.header("Connection") or "").lower())
        # the upstream's Content-Length came in one read: kept
        self.assertEqual(r.header("Content-Length"), str(len(r.body)))

    def test_proxy_status_and_body_relayed(self):
        status, reason, _, body = request(self.port, "GET", "/proxy/status/418")
        self.assertEqual((status, reason, body), (418, "Custom Reason", b"teapot says hi"))
        status, _, _, body = request(self.port, "GET", "/proxy/status/503")
        self.assertEqual((status, body), (503, b"teapot says hi"))
        status, _, _, body = request(self.port, "GET", "/proxy/status/204")
        self.assertEqual((status, body), (204, b""))
        status, _, _, body = request(self.port, "GET", "/proxy/nothing-here")
        self.assertEqual((status, body), (404, b"python has no /proxy/nothing-here"))

    def test_proxy_does_not_follow_redirects(self):
        status, _, headers, body = request(self.port, "GET", "/proxy/redirect")
        self.assertEqual((status, headers["Location"], body), (302, "/proxy/elsewhere", b"moved"))

    def test_proxy_does_not_decompress(self):
        status, _, headers, body = request(self.port, "GET", "/proxy/gzip",
                                           headers={"Accept-Encoding": "gzip"})
        self.assertEqual((status, headers["Content-Encoding"]), (200, "gzip"))
        self.assertEqual(gzip.decompress(body), b"squeeze me " * 1000)
        self.assertEqual(Upstream.seen[-1][1], "/proxy/gzip")
        self.assertIn(("Accept-Encoding", "gzip"), Upstream.seen[-1][2])

    def test_proxy_streams_large_and_chunked_answers(self):
        with Conn(self.port, timeout=20) as c:
            r = c.request("GET", "/proxy/big")
        self.assertEqual(r.status, 200)
        self.assertEqual(len(r.body), 4 * 1024 * 1024)
        self.assertEqual(r.body[:512], bytes(range(256)) * 2)
        with Conn(self.port, timeout=10) as c:
            t0 = time.monotonic()
            r = c.request("GET", "/proxy/chunked")
        self.assertEqual(r.body, b"first;second;third;")
        self.assertGreaterEqual(len(r.chunk_times), 2)
        self.assertLess(r.chunk_times[0][0] - t0, 0.3)  # before the upstream's pauses
        self.assertGreater(r.chunk_times[-1][0] - t0, 0.7)

    def test_proxy_upstream_failing_mid_answer_is_logged(self):
        self.assert_cut_mid_body(b"/proxy/truncated")
        self.assertTrue(self.server.wait_stderr(r"failed mid-response"))
        self.assertEqual(get(self.port, "/native")[0], 200)

    def test_proxy_client_leaving_mid_answer(self):
        with Conn(self.port, timeout=10, rcvbuf=4096) as c:
            c.send(b"GET /proxy/big HTTP/1.1\r\nHost: x\r\n\r\n")
            c.read_head()
        time.sleep(0.3)
        self.assertEqual(get(self.port, "/proxy/echo")[0], 200)
        self.assertNotIn("Uncaught exception GET /proxy/big", self.server.stderr())

    def test_proxy_keeps_client_connection_alive(self):
        with Conn(self.port) as c:
            for i in range(5):
                r = c.request("POST", "/proxy/echo", body=b"n%d" % i)
                self.assertEqual(json.loads(r.body)["body"], "n%d" % i)
            self.assertTrue(c.is_open())

    def test_proxy_502_when_upstream_down(self):
        status, _, _, body = request(self.port, "GET", "/dead/anything")
        self.assertEqual(status, 502)
        self.assertIn(b"502", body)
        self.assertTrue(self.server.wait_stderr(r"502 GET /dead/anything .*connection refused"))

    def test_proxy_504_on_upstream_timeout(self):
        t0 = time.monotonic()
        status, _, _, _ = request(self.port, "GET", "/slowproxy/x")
        self.assertEqual(status, 504)
        self.assertLess(time.monotonic() - t0, 1.8)


# ---- the example apps ---------------------------------------------------------------

class ExampleAppsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.upstream = UpstreamServer()
        cls.fallback = Server(os.path.join(ROOT, "apps", "fallback", "app.lua"),
                              env={"FALLBACK_UPSTREAM": cls.upstream.url})
        cls.proxy = Server(os.path.join(ROOT, "apps", "proxy", "app.lua"),
                           env={"PROXY_UPSTREAM": cls.upstream.url})

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.fallback.stop()
        cls.upstream.stop()

    def test_fallback_example(self):
        port = self.fallback.port
        status, _, _, body = request(port, "GET", "/gust/status")
        self.assertEqual((status, json.loads(body)["server"]), (200, "gust"))
        self.assertEqual(request(port, "GET", "/gust/hello/you")[3], b"Hello from gust, you\n")
        status, _, _, body = request(port, "GET", "/")
        self.assertEqual(status, 200)
        self.assertIn(b"WSAPI application behind gust", body)
        status, _, headers, _ = request(port, "POST", "/guestbook", body=b"name=tester&message=hello+there",
                                        headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual((status, headers["Location"]), (303, "/guestbook"))
        self.assertIn(b"<b>tester</b>: hello there", request(port, "GET", "/guestbook")[3])
        self.assertEqual(request(port, "POST", "/guestbook", body=b"name=x",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})[0], 400)
        self.assertIn(b"QUERY_STRING=q=1\n", request(port, "GET", "/env?q=1")[3])
        self.assertEqual(request(port, "GET", "/count?n=3")[3], b"line 1\nline 2\nline 3\n")
        status, reason, _, _ = request(port, "GET", "/nope")
        self.assertEqual((status, reason), (404, "Not Found"))
        # the proxied part
        status, _, _, body = request(port, "GET", "/api/x")
        self.assertEqual((status, body), (404, b"python has no /api/x"))

    def test_proxy_example(self):
        port = self.proxy.port
        self.assertEqual(json.loads(request(port, "GET", "/_gust/health")[3]), {"ok": True})
        status, _, _, body = request(port, "POST", "/proxy/echo?z=1", body=b"hi")
        report = json.loads(body)
        self.assertEqual((status, report["path"], report["body"]), (200, "/proxy/echo?z=1", "hi"))


if __name__ == "__main__":
    unittest.main()

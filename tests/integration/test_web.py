"""gust.web (DESIGN §4.1) end to end through the real server: apps/web.lua,
apps/web_xsrf.lua and apps/web_debug.lua."""
import email.utils
import gzip
import hashlib
import http.client
import http.cookies
import json
import os
import re
import shutil
import tempfile
import time
import unittest
import urllib.parse

from gusttest import Conn, GustTestCase, Server, get, raw_request, status_of


def request(port, method, path, body=None, headers=None, timeout=5):
    """One request on a new http.client connection -> (status, headers, body)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.headers, r.read()
    finally:
        c.close()


def cookies_of(headers):
    """Set-Cookie headers -> {name: Morsel}."""
    jar = {}
    for v in headers.get_all("Set-Cookie") or []:
        c = http.cookies.SimpleCookie()
        c.load(v)
        for k, m in c.items():
            jar[k] = m
    return jar


def multipart(fields, files, boundary="----gustBoundary7MA4YWxkTrZu0gW"):
    out = []
    for name, value in fields:
        out.append(b"--" + boundary.encode())
        out.append(b'Content-Disposition: form-data; name="%s"' % name.encode())
        out.append(b"")
        out.append(value)
    for name, filename, ctype, data in files:
        out.append(b"--" + boundary.encode())
        out.append(b'Content-Disposition: form-data; name="%s"; filename="%s"'
                   % (name.encode(), filename.encode()))
        out.append(b"Content-Type: " + ctype.encode())
        out.append(b"")
        out.append(data)
    out.append(b"--" + boundary.encode() + b"--")
    out.append(b"")
    return b"\r\n".join(out), "multipart/form-data; boundary=" + boundary


class WebAppTest(GustTestCase):
    app = "web.lua"

    def stats(self):
        return json.loads(get(self.port, "/stats")[2])

    # ---- routing --------------------------------------------------------

    def test_hello(self):
        status, headers, body = get(self.port, "/")
        self.assertEqual((status, body), (200, b"Hello, world"))
        self.assertEqual(headers["Content-Type"], "text/html; charset=UTF-8")
        self.assertEqual(headers["Server"], "gust/0.1.0")
        self.assertEqual(headers["Content-Length"], "12")

    def test_captures_are_url_decoded(self):
        self.assertEqual(get(self.port, "/hello/bob")[2], b"Hello, bob!")
        self.assertEqual(get(self.port, "/hello/bob%20x")[2], b"Hello, bob x!")
        self.assertEqual(get(self.port, "/hello/a+b")[2], b"Hello, a+b!")  # a path: + stays
        self.assertEqual(get(self.port, "/hello/%C3%A9")[2], "Hello, é!".encode())
        self.assertEqual(get(self.port, "/hello/bob?greeting=Hi")[2], b"Hi, bob!")
        self.assertEqual(json.loads(get(self.port, "/items/12/abc")[2]), {"id": "12", "name": "abc"})

    def test_patterns_are_anchored(self):
        for path in ("/hello/a/b", "/items/x/abc", "/items/12/abc/", "/x/", "//", "/hello/"):
            self.assertEqual(get(self.port, path)[0], 404, path)

    def test_404_page(self):
        status, headers, body = get(self.port, "/no/such/page")
        self.assertEqual(status, 404)
        self.assertIn(b"404", body)
        self.assertEqual(headers["Content-Type"], "text/html; charset=UTF-8")

    def test_405_with_allow(self):
        status, headers, _ = request(self.port, "POST", "/only-get", body=b"")
        self.assertEqual(status, 405)
        self.assertEqual(headers["Allow"], "GET")
        status, headers, _ = request(self.port, "PUT", "/get-post", body=b"x")
        self.assertEqual(status, 405)
        self.assertEqual(set(a.strip() for a in headers["Allow"].split(",")), {"GET", "POST", "DELETE"})
        self.assertEqual(request(self.port, "DELETE", "/get-post")[2], b"delete")

    def test_reverse_url(self):
        self.assertEqual(get(self.port, "/reverse")[2], b"/hello/a%20b")

    def test_framework_redirect_and_error_handlers(self):
        status, headers, _ = get(self.port, "/old")
        self.assertEqual((status, headers["Location"]), (301, "/"))
        self.assertEqual(get(self.port, "/gone")[0], 410)

    # ---- arguments --------------------------------------------------------

    def test_query_arguments(self):
        got = json.loads(get(self.port, "/args?a=1&a=2&b=x&b=y+z&u=%C3%A9")[2])
        self.assertEqual(got["a"], "2")  # the last one
        self.assertEqual(got["qs"], ["1", "2"])
        self.assertEqual(got["b"], ["x", "y z"])
        self.assertEqual(got["unicode"], "é")
        self.assertFalse(got["body_a"])

    def test_urlencoded_form(self):
        status, _, body = request(self.port, "POST", "/args?a=1", body=b"a=3&b=%26amp&b=+sp+",
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
        got = json.loads(body)
        self.assertEqual(status, 200)
        self.assertEqual(got["a"], "3")  # query then body: the body's is last
        self.assertEqual(got["q"], "1")
        self.assertEqual(got["qs"], ["1"])
        self.assertEqual(got["body_a"], "3")
        self.assertEqual(got["body_as"], ["3"])
        self.assertEqual(got["b"], ["&amp", "sp"])  # stripped, as in Tornado

    def test_multipart_with_file(self):
        data = os.urandom(5000) + b"\r\n--not-a-boundary\r\n" + os.urandom(100)
        body, ctype = multipart([("a", b"4"), ("b", b"multi\r\nline")],
                                [("up", "t.bin", "application/octet-stream", data),
                                 ("up", "second.txt", "text/plain", b"two")])
        status, _, resp = request(self.port, "POST", "/args", body=body,
                                  headers={"Content-Type": ctype})
        self.assertEqual(status, 200, resp)
        got = json.loads(resp)
        self.assertEqual(got["a"], "4")
        self.assertEqual(got["b"], ["multi\r\nline"])
        up = got["files"]["up"]
        self.assertEqual(len(up), 2)
        self.assertEqual(up[0]["filename"], "t.bin")
        self.assertEqual(up[0]["content_type"], "application/octet-stream")
        self.assertEqual(up[0]["size"], len(data))
        self.assertEqual(up[0]["sha1"], hashlib.sha1(data).hexdigest())
        self.assertEqual(up[1]["filename"], "second.txt")

    def test_malformed_multipart_is_400(self):
        status, _, _ = request(self.port, "POST", "/args", body=b"--xyz\r\ngarbage",
                               headers={"Content-Type": "multipart/form-data; boundary=xyz"})
        self.assertEqual(status, 400)

    def test_missing_argument_is_400(self):
        self.assertEqual(get(self.port, "/required")[0], 400)
        self.assertEqual(get(self.port, "/required?name=x")[2], b"got x")
        self.assertEqual(get(self.port, "/required?other=x")[0], 400)

    def test_request_fields(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            c.putrequest("POST", "/reqinfo?x=1")
            c.putheader("Content-Type", "text/plain")
            c.putheader("X-Rep", "1")
            c.putheader("x-rep", "2")
            c.putheader("X-Real-Ip", "1.2.3.4")  # ignored: xheaders is off
            c.putheader("X-Forwarded-For", "5.6.7.8")
            c.putheader("Content-Length", "4")
            c.endheaders(b"data")
            got = json.loads(c.getresponse().read())
        finally:
            c.close()
        self.assertEqual(got["method"], "POST")
        self.assertEqual((got["path"], got["query"], got["uri"]), ("/reqinfo", "x=1", "/reqinfo?x=1"))
        self.assertEqual(got["ct_lower"], "text/plain")
        self.assertEqual(got["ct_upper"], "text/plain")
        self.assertEqual(got["rep"], ["1", "2"])
        self.assertEqual(got["remote_ip"], "127.0.0.1")
        self.assertEqual(got["host"], "127.0.0.1:%d" % self.port)
        self.assertEqual((got["protocol"], got["version"], got["body"]), ("http", "HTTP/1.1", "data"))

    # ---- output -------------------------------------------------------------

    def test_set_add_clear_header(self):
        status, headers, body = get(self.port, "/headers")
        self.assertEqual(status, 200)
        self.assertEqual(headers.get_all("X-One"), ["1"])
        self.assertEqual(headers.get_all("X-Num"), ["42"])
        self.assertEqual(headers.get_all("X-Replaced"), ["new"])
        self.assertEqual(headers.get_all("X-Multi"), ["a", "b"])
        self.assertIsNone(headers.get("X-Gone"))
        self.assertEqual(headers.get_all("Content-Type"), ["text/plain; charset=UTF-8"])

    def test_header_injection_is_500(self):
        for kind in ("value", "lf", "name", "redirect", "cookie"):
            raw = raw_request(self.port, b"GET /inject/%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                              % kind.encode(), read_timeout=3)
            self.assertEqual(status_of(raw), 500, (kind, raw))
            self.assertNotIn(b"X-Injected", raw, kind)
            self.assertNotIn(b"should not get here", raw)
        self.assertEqual(get(self.port, "/")[0], 200)

    def test_write_table_is_json(self):
        status, headers, body = get(self.port, "/json")
        self.assertEqual(headers["Content-Type"], "application/json; charset=UTF-8")
        self.assertEqual(json.loads(body), {"a": 1, "list": [1, 2, 3], "s": "</script>"})
        self.assertNotIn(b"</script>", body)

    def test_set_status(self):
        status, _, body = get(self.port, "/status")
        self.assertEqual((status, body), (201, b"created"))

    def test_redirects(self):
        for path, code in (("/redirect/", 302), ("/redirect/perm", 301), ("/redirect/307", 307)):
            status, headers, _ = get(self.port, path)
            self.assertEqual(status, code, path)
            self.assertEqual(headers["Location"], "/target")

    def test_etag_304_from_handler_output(self):
        with Conn(self.port) as c:
            r = c.request("GET", "/")
            etag = r.header("Etag")
            self.assertTrue(etag)
            r2 = c.request("GET", "/", headers=[("If-None-Match", etag)])
            self.assertEqual((r2.status, r2.body), (304, b""))
            self.assertEqual(c.request("GET", "/").body, b"Hello, world")

    def test_head_handler_keeps_its_content_length(self):
        # Tornado: a head() that sets Content-Length keeps it (the size the
        # GET would have), and HEAD never carries a body
        with Conn(self.port) as c:
            r = c.request("HEAD", "/head")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header_list("Content-Length"), ["17"])
            self.assertEqual(c.request("GET", "/head").body, b"head and get body")

    def test_keep_alive_across_errors(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            c.connect()
            local = c.sock.getsockname()
            for path, code in (("/", 200), ("/nope", 404), ("/teapot", 418), ("/required", 400),
                               ("/boom", 500), ("/", 200)):
                c.request("GET", path)
                r = c.getresponse()
                r.read()
                self.assertEqual(r.status, code, path)
            self.assertEqual(c.sock.getsockname(), local)
        finally:
            c.close()

    # ---- cookies and authentication ----------------------------------------------

    def test_cookies_round_trip(self):
        status, headers, _ = get(self.port, "/cookie/set?user=alice")
        jar = cookies_of(headers)
        self.assertEqual(jar["plain"].value, "v1")
        self.assertTrue(jar["plain"]["httponly"])
        self.assertEqual(jar["plain"]["path"], "/")
        signed = jar["user"].value
        self.assertNotEqual(signed, "alice")
        self.assertIn("alice", signed.replace("YWxpY2U", "alice"))  # base64 of alice inside
        cookie = "plain=v1; user=%s" % signed
        got = json.loads(get(self.port, "/cookie/get", headers={"Cookie": cookie})[2])
        self.assertEqual(got, {"plain": "v1", "user": "alice"})

    def test_tampered_secure_cookie_rejected(self):
        _, headers, _ = get(self.port, "/cookie/set?user=alice")
        signed = cookies_of(headers)["user"].value
        _, headers2, _ = get(self.port, "/cookie/set?user=mallory")
        other = cookies_of(headers2)["user"].value
        forged = [
            signed.replace("YWxpY2U", "Ym9iYm8"),    # the value changed
            signed[:-1] + ("0" if signed[-1] != "0" else "1"),  # the signature changed
            "alice",                                   # not signed at all
            signed[:len(signed) // 2],                 # truncated
        ]
        # the signature of one value on another
        sig_a, sig_o = signed.rsplit("|", 1), other.rsplit("|", 1)
        forged.append(sig_o[0] + "|" + sig_a[1])
        for f in forged:
            got = json.loads(get(self.port, "/cookie/get", headers={"Cookie": "user=" + f})[2])
            self.assertIs(got["user"], False, f)

    def test_clear_cookie(self):
        _, headers, _ = get(self.port, "/cookie/clear")
        m = cookies_of(headers)["plain"]
        self.assertEqual(m.value, "")
        expired = m["max-age"] in ("0", 0)
        if m["expires"]:
            expired = expired or email.utils.parsedate_to_datetime(m["expires"]).timestamp() < time.time()
        self.assertTrue(expired, headers.get_all("Set-Cookie"))

    def test_authenticated_redirects_to_login(self):
        status, headers, _ = get(self.port, "/private")
        self.assertEqual(status, 302)
        loc = headers["Location"]
        self.assertTrue(loc.startswith("/login?next="), loc)
        self.assertEqual(urllib.parse.parse_qs(urllib.parse.urlsplit(loc).query)["next"], ["/private"])
        # with a query, next keeps it
        _, headers, _ = get(self.port, "/private?a=1")
        self.assertEqual(urllib.parse.parse_qs(urllib.parse.urlsplit(headers["Location"]).query)["next"],
                         ["/private?a=1"])
        # not GET: 403
        self.assertEqual(request(self.port, "POST", "/private", body=b"")[0], 403)

    def test_authenticated_with_user(self):
        _, headers, _ = get(self.port, "/cookie/set?user=carol")
        signed = cookies_of(headers)["user"].value
        status, _, body = get(self.port, "/private", headers={"Cookie": "user=" + signed})
        self.assertEqual((status, body), (200, b"private for carol"))
        status, _, body = request(self.port, "POST", "/private", body=b"",
                                  headers={"Cookie": "user=" + signed})
        self.assertEqual((status, body), (200, b"posted by carol"))
        status, _, _ = get(self.port, "/private", headers={"Cookie": "user=" + signed[:-2] + "00"})
        self.assertEqual(status, 302)

    # ---- errors -------------------------------------------------------------------

    def test_http_error_418(self):
        status, _, body = get(self.port, "/teapot")
        self.assertEqual(status, 418)
        self.assertIn(b"418", body)
        self.assertNotIn(b"traceback", body.lower())

    def test_500_without_traceback(self):
        for method in ("GET", "POST"):
            status, headers, body = request(self.port, method, "/boom", body=b"" if method == "POST" else None)
            self.assertEqual(status, 500)
            self.assertNotIn(b"secret detail", body)
            self.assertNotIn(b"traceback", body.lower())
            self.assertNotIn(b".lua", body)
        # ... but the log has it, with where it happened
        m = self.server.wait_stderr(r"secret detail of the failure")
        self.assertTrue(m, self.server.stderr())
        self.assertRegex(self.server.stderr(), r"web\.lua:\d+")
        self.assertEqual(get(self.port, "/")[0], 200)

    def test_custom_write_error(self):
        status, headers, body = get(self.port, "/custom-error")
        self.assertEqual((status, body), (409, b"custom error page 409"))
        self.assertTrue(self.server.wait_stderr(r"conflict detail"))

    # ---- life cycle -------------------------------------------------------------

    def test_flush_streams(self):
        with Conn(self.port) as c:
            c.send(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.header("Transfer-Encoding"), "chunked")
            self.assertEqual(r.header("Content-Type"), "text/plain")
            self.assertRegex(r.body, rb"^part 1 at [\d.]+\npart 2 at [\d.]+\npart 3 at [\d.]+\ndone\n$")
            t = [t for t, _ in r.chunk_times]
            self.assertGreater(t[-1] - t[0], 0.45, "flush() did not send as it went")
            self.assertEqual(c.request("GET", "/").body, b"Hello, world")

    def test_on_finish(self):
        before = self.stats()["finished"]
        for _ in range(3):
            self.assertEqual(get(self.port, "/finishing")[2], b"finishing")
        deadline = time.monotonic() + 2
        while self.stats()["finished"] < before + 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.stats()["finished"], before + 3)

    def test_asynchronous(self):
        self.assertEqual(get(self.port, "/async")[2], b"async done")

    def test_finish_in_prepare(self):
        self.assertEqual(get(self.port, "/prepared")[2], b"finished in prepare")

    def test_on_connection_close(self):
        before = self.stats()
        c = Conn(self.port)
        c.send(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = time.monotonic() + 3
        while self.stats()["waiting"] <= before["waiting"] and time.monotonic() < deadline:
            time.sleep(0.05)
        c.close()
        deadline = time.monotonic() + 3
        while self.stats()["closed"] <= before["closed"] and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.stats()["closed"], before["closed"] + 1)

    # ---- static files -----------------------------------------------------------

    def test_static_file(self):
        for prefix in ("/files/", "/static/"):
            status, headers, body = get(self.port, prefix + "hello.txt")
            self.assertEqual((status, body), (200, b"hello static\n"))
            self.assertEqual(headers["Content-Type"], "text/plain")
            self.assertEqual(headers["Content-Length"], "13")
            self.assertTrue(headers["Etag"])
            self.assertTrue(headers["Last-Modified"])
        status, headers, _ = get(self.port, "/static/sub/style.css")
        self.assertEqual((status, headers["Content-Type"]), (200, "text/css"))
        self.assertEqual(get(self.port, "/files/missing.txt")[0], 404)

    def test_static_304(self):
        _, headers, _ = get(self.port, "/files/hello.txt")
        status, h2, body = get(self.port, "/files/hello.txt", headers={"If-None-Match": headers["Etag"]})
        self.assertEqual((status, body), (304, b""))
        status, _, _ = get(self.port, "/files/hello.txt",
                           headers={"If-Modified-Since": headers["Last-Modified"]})
        self.assertEqual(status, 304)
        status, _, _ = get(self.port, "/files/hello.txt", headers={"If-None-Match": '"nope"'})
        self.assertEqual(status, 200)

    def test_static_range(self):
        full = get(self.port, "/files/range.txt")[2]
        self.assertEqual(len(full), 6800)
        status, headers, body = get(self.port, "/files/range.txt", headers={"Range": "bytes=0-9"})
        self.assertEqual((status, body), (206, full[:10]))
        self.assertEqual(headers["Content-Range"], "bytes 0-9/6800")
        self.assertEqual(headers["Content-Length"], "10")
        status, headers, body = get(self.port, "/files/range.txt", headers={"Range": "bytes=6700-"})
        self.assertEqual((status, body), (206, full[6700:]))
        status, headers, body = get(self.port, "/files/range.txt", headers={"Range": "bytes=-5"})
        self.assertEqual((status, body), (206, full[-5:]))
        self.assertEqual(headers["Content-Range"], "bytes 6795-6799/6800")
        status, headers, _ = get(self.port, "/files/range.txt", headers={"Range": "bytes=9000-"})
        self.assertEqual(status, 416)
        self.assertEqual(headers["Content-Range"], "bytes */6800")
        # several ranges: the whole file (as Tornado); an inverted one: 416
        status, headers, body = get(self.port, "/files/range.txt", headers={"Range": "bytes=0-1,5-6"})
        self.assertEqual((status, body), (200, full))
        self.assertEqual(get(self.port, "/files/range.txt", headers={"Range": "bytes=5-2"})[0], 416)
        # HEAD with a range: the 206 head, no body
        with Conn(self.port) as c:
            r = c.request("HEAD", "/files/range.txt", headers=[("Range", "bytes=0-9")])
            self.assertEqual((r.status, r.header("Content-Length"), r.body), (206, "10", b""))
            self.assertEqual(c.request("GET", "/").body, b"Hello, world")
        # curl agrees
        import subprocess
        p = subprocess.run(["curl", "-sS", "-m", "5", "-r", "100-199",
                            "http://127.0.0.1:%d/files/range.txt" % self.port],
                           capture_output=True, timeout=10)
        self.assertEqual(p.stdout, full[100:200])

    def test_static_head(self):
        with Conn(self.port) as c:
            r = c.request("HEAD", "/files/range.txt")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("Content-Length"), "6800")
            self.assertEqual(c.request("GET", "/files/hello.txt").body, b"hello static\n")

    def test_static_directory(self):
        status, headers, _ = get(self.port, "/files/dir")
        self.assertEqual((status, headers["Location"]), (301, "/files/dir/"))
        status, headers, body = get(self.port, "/files/dir/")
        self.assertEqual(status, 200)
        self.assertIn(b"index of dir", body)

    def test_static_traversal_rejected(self):
        for path in (b"/files/../not_static_secret.txt",
                     b"/files/%2e%2e/not_static_secret.txt",
                     b"/files/%2E%2E%2Fnot_static_secret.txt",
                     b"/files/..%2fnot_static_secret.txt",
                     b"/files/sub/../../not_static_secret.txt",
                     b"/files/sub/%2e%2e/%2e%2e/web.lua",
                     b"/static/../web.lua",
                     b"/static/..%5cweb.lua",
                     b"/files//etc/passwd",
                     b"/files/%2fetc%2fpasswd",
                     b"/files/hello.txt%00.png",
                     b"/files/../../../../../../etc/passwd"):
            raw = raw_request(self.port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                              read_timeout=3)
            self.assertIn(status_of(raw), (400, 403, 404), (path, raw[:200]))
            self.assertNotIn(b"secret outside", raw, path)
            self.assertNotIn(b"root:", raw, path)
            self.assertNotIn(b"gust.web", raw, path)
        self.assertEqual(get(self.port, "/files/hello.txt")[0], 200)


class WebBigStaticTest(unittest.TestCase):
    """StaticFileHandler on a file much larger than any buffer (sent by the
    core without passing through Lua), to a slow reader and in ranges."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="gust-static-")
        cls.data = os.urandom(3 << 20)
        with open(os.path.join(cls.dir, "big.bin"), "wb") as f:
            f.write(cls.data)
        cls.server = Server("web.lua", env={"GUST_TEST_STATIC": cls.dir})
        cls.port = cls.server.port

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.stop()
        finally:
            shutil.rmtree(cls.dir, ignore_errors=True)

    def test_big_file_slow_reader(self):
        with Conn(self.port, timeout=10, rcvbuf=16384) as c:
            c.send(b"GET /tmpfiles/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.3)
            version, status, reason, headers, head = c.read_head()
            self.assertEqual(status, 200)
            n = int(dict((k.lower(), v) for k, v in headers)["content-length"])
            self.assertEqual(n, len(self.data))
            got = bytearray(c.buf)
            c.buf = b""
            i = 0
            while len(got) < n:
                d = c.sock.recv(min(65536, n - len(got)))
                self.assertTrue(d)
                got += d
                i += 1
                if i % 8 == 0:
                    time.sleep(0.005)
            self.assertEqual(bytes(got), self.data)
            # the same connection goes on
            self.assertEqual(c.request("GET", "/").body, b"Hello, world")

    def test_big_file_ranges(self):
        status, headers, body = get(self.port, "/tmpfiles/big.bin", headers={"Range": "bytes=1000000-2000000"})
        self.assertEqual(status, 206)
        self.assertEqual(body, self.data[1000000:2000001])
        self.assertEqual(headers["Content-Range"], "bytes 1000000-2000000/%d" % len(self.data))

    def test_big_file_curl(self):
        import subprocess
        p = subprocess.run(["curl", "-sS", "-m", "10", "http://127.0.0.1:%d/tmpfiles/big.bin" % self.port],
                           capture_output=True, timeout=15)
        self.assertEqual(hashlib.sha1(p.stdout).hexdigest(), hashlib.sha1(self.data).hexdigest())

    def test_file_changed_between_requests(self):
        path = os.path.join(self.dir, "changing.txt")
        with open(path, "w") as f:
            f.write("one")
        s1, h1, b1 = get(self.port, "/tmpfiles/changing.txt")
        time.sleep(1.1)  # a new mtime second
        with open(path, "w") as f:
            f.write("twotwo")
        s2, h2, b2 = get(self.port, "/tmpfiles/changing.txt", headers={"If-None-Match": h1["Etag"]})
        self.assertEqual((b1, s2, b2), (b"one", 200, b"twotwo"))
        self.assertNotEqual(h1["Etag"], h2["Etag"])


class WebXsrfTest(GustTestCase):
    app = "web_xsrf.lua"

    def token_and_cookie(self):
        status, headers, body = get(self.port, "/form")
        self.assertEqual(status, 200)
        cookie = cookies_of(headers)["_xsrf"].value
        return body.decode(), cookie

    def test_post_without_token_is_403(self):
        status, _, _ = request(self.port, "POST", "/form", body=b"x=1",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(status, 403)
        for m in ("PUT", "DELETE", "PATCH"):
            self.assertEqual(request(self.port, m, "/form", body=b"")[0], 403, m)

    def test_cookie_without_argument_is_403(self):
        _, cookie = self.token_and_cookie()
        status, _, _ = request(self.port, "POST", "/form", body=b"x=1",
                               headers={"Content-Type": "application/x-www-form-urlencoded",
                                        "Cookie": "_xsrf=" + cookie})
        self.assertEqual(status, 403)

    def test_post_with_token_argument(self):
        token, cookie = self.token_and_cookie()
        body = urllib.parse.urlencode({"_xsrf": token, "x": "ok"}).encode()
        status, _, resp = request(self.port, "POST", "/form", body=body,
                                  headers={"Content-Type": "application/x-www-form-urlencoded",
                                           "Cookie": "_xsrf=" + cookie})
        self.assertEqual((status, resp), (200, b"accepted ok"))

    def test_post_with_token_header(self):
        token, cookie = self.token_and_cookie()
        status, _, resp = request(self.port, "POST", "/form", body=b"",
                                  headers={"X-XSRFToken": token, "Cookie": "_xsrf=" + cookie})
        self.assertEqual((status, resp), (200, b"accepted "))
        status, _, _ = request(self.port, "DELETE", "/form",
                               headers={"X-XSRFToken": token, "Cookie": "_xsrf=" + cookie})
        self.assertEqual(status, 200)

    def test_mismatched_token_is_403(self):
        token1, cookie1 = self.token_and_cookie()
        token2, cookie2 = self.token_and_cookie()
        status, _, _ = request(self.port, "POST", "/form", body=b"",
                               headers={"X-XSRFToken": token1, "Cookie": "_xsrf=" + cookie2})
        self.assertEqual(status, 403)
        status, _, _ = request(self.port, "POST", "/form", body=b"",
                               headers={"X-XSRFToken": "garbage", "Cookie": "_xsrf=" + cookie1})
        self.assertEqual(status, 403)

    def test_token_is_masked(self):
        # two renders of the same cookie's token differ (BREACH) but both pass
        _, cookie = self.token_and_cookie()
        hs = {"Cookie": "_xsrf=" + cookie}
        t1 = get(self.port, "/form", headers=hs)[2].decode()
        t2 = get(self.port, "/form", headers=hs)[2].decode()
        self.assertNotEqual(t1, t2)
        for t in (t1, t2):
            status, _, _ = request(self.port, "POST", "/form", body=b"",
                                   headers={"X-XSRFToken": t, "Cookie": "_xsrf=" + cookie})
            self.assertEqual(status, 200)

    def test_form_html(self):
        body = get(self.port, "/html")[2]
        self.assertRegex(body, rb'<input type="hidden" name="_xsrf" value="[^"]+"/>')


class WebDebugTest(GustTestCase):
    app = "web_debug.lua"

    def test_500_with_traceback(self):
        status, headers, body = get(self.port, "/boom")
        self.assertEqual(status, 500)
        self.assertIn(b"debug detail of the failure", body)
        self.assertIn(b"web_debug.lua", body)
        self.assertIn(b"traceback", body.lower())

    def test_http_error_has_no_traceback(self):
        status, _, body = get(self.port, "/teapot")
        self.assertEqual(status, 418)
        self.assertNotIn(b"traceback", body.lower())

    def test_gzip(self):
        expected = b"compress me please " * 500
        status, headers, body = get(self.port, "/big", headers={"Accept-Encoding": "gzip"})
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Encoding"], "gzip")
        self.assertIn("Accept-Encoding", headers["Vary"])
        self.assertEqual(int(headers["Content-Length"]), len(body))
        self.assertLess(len(body), len(expected) // 10)
        self.assertEqual(gzip.decompress(body), expected)
        status, headers, body = get(self.port, "/big")
        self.assertIsNone(headers.get("Content-Encoding"))
        self.assertEqual(body, expected)


if __name__ == "__main__":
    unittest.main()

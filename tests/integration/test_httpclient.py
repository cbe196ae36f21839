"""gust.httpclient (DESIGN §4.3) from inside the gust binary, against a real
nginx from Debian on loopback: plain HTTP and HTTPS with a self-signed
certificate made here with the openssl command. gust runs
apps/httpclient_driver.lua, whose endpoints fetch what they are told and
answer with a JSON report; nginx's access log (with $connection) shows how
many connections the client used.

nginx runs from a temporary prefix with its own config (nothing under /etc
is read or written), like tests/bench/hello.sh.
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.parse

from gusttest import ROOT, Server, get

NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
LUA_MODULE = "/usr/lib/nginx/modules/ngx_http_lua_module.so"
NDK_MODULE = "/usr/lib/nginx/modules/ndk_http_module.so"

NGINX_CONF = r"""
load_module %(ndk)s;
load_module %(lua)s;
daemon off;
master_process off;
worker_processes 1;
pid %(prefix)s/nginx.pid;
error_log %(prefix)s/error.log warn;
events { worker_connections 4096; }
http {
    log_format conn '$connection $connection_requests $request_method $request_uri';
    access_log %(prefix)s/access.log conn;
    client_body_temp_path %(prefix)s/tmp/body;
    proxy_temp_path %(prefix)s/tmp/proxy;
    fastcgi_temp_path %(prefix)s/tmp/fastcgi;
    uwsgi_temp_path %(prefix)s/tmp/uwsgi;
    scgi_temp_path %(prefix)s/tmp/scgi;
    default_type text/plain;
    keepalive_timeout 75s;
    gzip on;
    gzip_types text/plain;
    gzip_min_length 100;

    server {
        listen 127.0.0.1:%(port)d;
        listen 127.0.0.1:%(tls_port)d ssl;
        ssl_certificate %(prefix)s/cert.pem;
        ssl_certificate_key %(prefix)s/key.pem;
        root %(prefix)s/html;

        location = /echo {
            content_by_lua_block {
                ngx.req.read_body()
                local body = ngx.req.get_body_data() or ""
                ngx.header["X-Method"] = ngx.req.get_method()
                ngx.print(ngx.req.get_method() .. " " .. body)
            }
        }
        location = /headers {
            content_by_lua_block {
                local h = ngx.req.get_headers()
                ngx.print((h["user-agent"] or "") .. "|" .. (h["accept-encoding"] or "") .. "|" ..
                          (h["host"] or "") .. "|" .. (h["authorization"] or ""))
            }
        }
        location = /chunked {
            content_by_lua_block {
                for i = 1, 3 do
                    ngx.print("part" .. i .. ";")
                    ngx.flush(true)
                    ngx.sleep(0.05)
                end
            }
        }
        location = /slow {
            content_by_lua_block {
                ngx.sleep(0.2)
                ngx.print("slow")
            }
        }
        location = /r301 { return 301 /echo; }
        location = /r302 { return 302 /echo; }
        location = /r303 { return 303 /echo; }
        location = /r307 { return 307 /echo; }
        location = /r308 { return 308 /echo; }
        location = /loop { return 302 /loop; }
        location = /nothing { return 204; }
    }
}
"""

STATIC = b"gust static file\n" * 64
BIG_TEXT = b"".join(b"line %06d of a compressible text file\n" % i for i in range(2000))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class Nginx:
    def __init__(self):
        self.prefix = tempfile.mkdtemp(prefix="gust-httpclient-")
        os.makedirs(os.path.join(self.prefix, "tmp"))
        html = os.path.join(self.prefix, "html")
        os.makedirs(html)
        with open(os.path.join(html, "static.txt"), "wb") as f:
            f.write(STATIC)
        with open(os.path.join(html, "big.txt"), "wb") as f:
            f.write(BIG_TEXT)
        # A self-signed certificate for "localhost" only (no IP address in
        # it), which is its own CA: ca_certs = cert.pem trusts it.
        self.cert = os.path.join(self.prefix, "cert.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                        "-keyout", os.path.join(self.prefix, "key.pem"), "-out", self.cert],
                       check=True, capture_output=True)
        self.port, self.tls_port = free_port(), free_port()
        conf = os.path.join(self.prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF % {"prefix": self.prefix, "port": self.port,
                                  "tls_port": self.tls_port, "lua": LUA_MODULE,
                                  "ndk": NDK_MODULE})
        self.proc = subprocess.Popen([NGINX, "-p", self.prefix + "/", "-e",
                                      os.path.join(self.prefix, "error.log"), "-c", conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if not (wait_port(self.port) and wait_port(self.tls_port)):
            self.stop()
            raise RuntimeError("nginx did not start: %s" % self.error_log())

    def url(self, path, tls=False, host="127.0.0.1"):
        if tls:
            return "https://%s:%d%s" % (host, self.tls_port, path)
        return "http://%s:%d%s" % (host, self.port, path)

    def access_log(self):
        with open(os.path.join(self.prefix, "access.log")) as f:
            return [line.split() for line in f if line.strip()]

    def error_log(self):
        try:
            with open(os.path.join(self.prefix, "error.log")) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stderr.close()
        shutil.rmtree(self.prefix, ignore_errors=True)


def fd_count(pid):
    """Open descriptors of pid, once gust has seen this harness's last
    connection to it close (a count taken at once may still include it)."""
    counts = []
    for _ in range(30):
        time.sleep(0.1)
        counts.append(len(os.listdir("/proc/%d/fd" % pid)))
        if len(counts) >= 3 and counts[-1] == counts[-2] == counts[-3]:
            break
    return counts[-1]


@unittest.skipUnless(os.path.exists(NGINX) and os.path.exists(LUA_MODULE),
                     "nginx with the Lua module is not installed (make deps)")
class HTTPClientAgainstNginx(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.nginx = Nginx()
        cls.gust = Server("httpclient_driver.lua")

    @classmethod
    def tearDownClass(cls):
        cls.gust.stop()
        cls.nginx.stop()

    def call(self, endpoint, timeout=60, **params):
        q = urllib.parse.urlencode(params, doseq=True)
        status, _, body = get(self.gust.port, "/%s?%s" % (endpoint, q), timeout=timeout)
        self.assertEqual(status, 200, body)
        return json.loads(body)

    def fetch(self, path, tls=False, host="127.0.0.1", **params):
        return self.call("fetch", url=self.nginx.url(path, tls, host), **params)

    # ---- methods, bodies -------------------------------------------------

    def test_methods(self):
        r = self.fetch("/echo")
        self.assertEqual((r["code"], r["body"]), (200, "GET "), r)
        for m in ("POST", "PUT", "DELETE", "PATCH"):
            r = self.fetch("/echo", method=m, body="payload-" + m)
            self.assertEqual(r["code"], 200, r)
            self.assertEqual(r["body"], "%s payload-%s" % (m, m))
            self.assertEqual(r["headers"]["x-method"], m)
        # (without Accept-Encoding: nginx drops Content-Length when it would gzip)
        r = self.fetch("/static.txt", method="HEAD", decompress="0")
        self.assertEqual(r["code"], 200)
        self.assertEqual(r["body"], "")
        self.assertEqual(r["headers"]["content-length"], str(len(STATIC)))

    def test_static_file_and_default_headers(self):
        r = self.fetch("/static.txt")
        self.assertEqual(r["code"], 200)
        self.assertEqual(r["body"].encode(), STATIC)
        r = self.fetch("/headers")
        ua, ae, host, auth = r["body"].split("|")
        self.assertTrue(ua.startswith("gust/"), ua)
        self.assertEqual(ae, "gzip")
        self.assertEqual(host, "127.0.0.1:%d" % self.nginx.port)
        r = self.fetch("/nothing")
        self.assertEqual((r["code"], r["body"]), (204, ""))

    def test_chunked(self):
        r = self.fetch("/chunked")
        self.assertEqual(r["code"], 200)
        self.assertEqual(r["headers"].get("transfer-encoding"), "chunked")
        self.assertEqual(r["body"], "part1;part2;part3;")

    def test_gzip(self):
        r = self.fetch("/big.txt")
        self.assertEqual(r["code"], 200)
        self.assertEqual(r["headers"].get("x-consumed-content-encoding"), "gzip")
        self.assertEqual(r["body"].encode(), BIG_TEXT)
        raw = self.fetch("/big.txt", decompress="0", header="Accept-Encoding:gzip", hex="1")
        self.assertEqual(raw["headers"].get("content-encoding"), "gzip")
        import gzip
        self.assertEqual(gzip.decompress(bytes.fromhex(raw["body"])), BIG_TEXT)

    def test_streaming_callback(self):
        r = self.call("stream", url=self.nginx.url("/chunked"))
        self.assertEqual(r["code"], 200)
        self.assertEqual(r["body"], "")
        self.assertEqual(r["bytes"], len("part1;part2;part3;"))
        self.assertGreaterEqual(r["chunks"], 2, r)

    def test_callback_style_handler(self):
        status, _, body = get(self.gust.port, "/callback?url=" +
                              urllib.parse.quote(self.nginx.url("/static.txt")))
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["body"].encode(), STATIC)

    # ---- redirects -------------------------------------------------------

    def test_redirects(self):
        for code in (301, 302, 303, 307, 308):
            r = self.fetch("/r%d" % code)
            self.assertEqual((r["code"], r["body"]), (200, "GET "), code)
            self.assertEqual(r["effective_url"], self.nginx.url("/echo"))
        for code in (301, 302, 303):
            r = self.fetch("/r%d" % code, method="POST", body="x")
            self.assertEqual(r["body"], "GET ", code)
        for code in (307, 308):
            r = self.fetch("/r%d" % code, method="POST", body="x")
            self.assertEqual(r["body"], "POST x", code)
        r = self.fetch("/r302", follow_redirects="0")
        self.assertEqual(r["code"], 302)
        self.assertEqual(self.fetch("/loop"), {"err": "too many redirects"})

    # ---- HTTPS -----------------------------------------------------------

    def test_https_self_signed(self):
        r = self.fetch("/static.txt", tls=True, host="localhost")
        self.assertIn("err", r)
        self.assertTrue(r["err"].startswith("tls: certificate verify failed: "), r)
        self.assertIn("self-signed certificate", r["err"])
        r = self.fetch("/static.txt", tls=True, host="localhost", ca_certs=self.nginx.cert)
        self.assertEqual(r.get("code"), 200, r)
        self.assertEqual(r["body"].encode(), STATIC)
        r = self.fetch("/echo", tls=True, host="localhost", ca_certs=self.nginx.cert,
                       method="POST", body="over tls")
        self.assertEqual(r["body"], "POST over tls")
        r = self.fetch("/big.txt", tls=True, host="localhost", ca_certs=self.nginx.cert)
        self.assertEqual(r["body"].encode(), BIG_TEXT)
        r = self.fetch("/static.txt", tls=True, validate_cert="0")
        self.assertEqual(r.get("code"), 200, r)

    def test_https_host_name_checked(self):
        # trusted certificate, wrong name: the certificate is for localhost
        r = self.fetch("/static.txt", tls=True, host="127.0.0.1", ca_certs=self.nginx.cert)
        self.assertEqual(r, {"err": "tls: certificate verify failed: IP address mismatch"})

    def test_https_reuse(self):
        before = len(self.nginx.access_log())
        r = self.call("loop", url=self.nginx.url("/static.txt", True, "localhost"), n=10,
                      ca_certs=self.nginx.cert)
        self.assertEqual(r, {"ok": 10, "errors": 0})
        lines = self.nginx.access_log()[before:]
        self.assertEqual(len({line[0] for line in lines}), 1, lines)

    def test_bad_ca_file(self):
        r = self.fetch("/static.txt", tls=True, host="localhost", ca_certs="/nonexistent.pem")
        self.assertTrue(r["err"].startswith("tls: cannot load ca_certs /nonexistent.pem"), r)

    # ---- failures --------------------------------------------------------

    def test_refused(self):
        self.assertEqual(self.call("fetch", url="http://127.0.0.1:%d/" % free_port()),
                         {"err": "connection refused"})

    def test_unknown_host(self):
        r = self.call("fetch", url="http://no-such-host.invalid/")
        self.assertTrue(r["err"].startswith("dns: no-such-host.invalid: "), r)

    def test_timeout_server_never_answers(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(8)  # the kernel accepts; nobody reads or answers
            t0 = time.monotonic()
            r = self.call("fetch", url="http://127.0.0.1:%d/" % s.getsockname()[1],
                          request_timeout="0.5")
            self.assertEqual(r, {"err": "timeout"})
            self.assertLess(time.monotonic() - t0, 3)

    def test_connect_timeout(self):
        # A full accept queue makes the kernel drop new SYNs, so a connect
        # hangs (the only unanswered connect possible on loopback).
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(0)
        port = s.getsockname()[1]
        fillers = []
        try:
            for _ in range(8):
                c = socket.socket()
                c.setblocking(False)
                c.connect_ex(("127.0.0.1", port))
                fillers.append(c)
            probe = socket.socket()
            probe.settimeout(0.3)
            try:
                probe.connect(("127.0.0.1", port))
                self.skipTest("this kernel completes connects beyond the backlog")
            except socket.timeout:
                pass
            finally:
                probe.close()
            r = self.call("fetch", url="http://127.0.0.1:%d/" % port, connect_timeout="0.3",
                          request_timeout="5")
            self.assertEqual(r, {"err": "timeout while connecting"})
        finally:
            for c in fillers:
                c.close()
            s.close()

    # ---- pool, concurrency, descriptors ----------------------------------

    def test_connection_reuse(self):
        self.call("close_idle")
        before = len(self.nginx.access_log())
        r = self.call("loop", url=self.nginx.url("/static.txt"), n=50)
        self.assertEqual(r, {"ok": 50, "errors": 0})
        # nginx logs a request after answering it: the last line may lag.
        deadline = time.monotonic() + 3
        lines = self.nginx.access_log()[before:]
        while len(lines) < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
            lines = self.nginx.access_log()[before:]
        self.assertEqual(len(lines), 50)
        self.assertEqual(len({line[0] for line in lines}), 1,
                         "nginx saw %d connections" % len({line[0] for line in lines}))
        self.assertEqual([int(line[1]) for line in lines], list(range(1, 51)))

    def test_max_clients_queueing(self):
        url = self.nginx.url("/slow")
        r = self.call("concurrent", url=url, n=6, max_clients=2)
        self.assertEqual((r["ok"], r["errors"]), (6, 0))
        self.assertGreaterEqual(r["elapsed"], 0.55, r)  # three waves of 0.2 s
        r = self.call("concurrent", url=url, n=6, max_clients=6)
        self.assertEqual((r["ok"], r["errors"]), (6, 0))
        self.assertLess(r["elapsed"], 0.5, r)  # one wave

    def test_no_fd_leak_after_10000_fetches(self):
        pid = self.call("pid")["pid"]  # the worker's, under a master process
        self.call("close_idle")
        base = fd_count(pid)
        r = self.call("loop", url=self.nginx.url("/static.txt"), n=10000, timeout=300)
        self.assertEqual(r, {"ok": 10000, "errors": 0})
        r = self.call("loop", url=self.nginx.url("/static.txt"), n=300, close="1")
        self.assertEqual(r, {"ok": 300, "errors": 0})
        r = self.call("loop", url="http://127.0.0.1:%d/" % free_port(), n=100)
        self.assertEqual((r["errors"], r["first_error"]), (100, "connection refused"))
        r = self.call("concurrent", url=self.nginx.url("/static.txt"), n=500, max_clients=50)
        self.assertEqual(r["ok"], 500)
        r = self.call("loop", url=self.nginx.url("/static.txt", True, "localhost"), n=200,
                      ca_certs=self.nginx.cert)
        self.assertEqual(r, {"ok": 200, "errors": 0})
        self.call("close_idle")
        self.assertEqual(fd_count(pid), base)


@unittest.skipUnless(os.path.exists(NGINX) and os.path.exists(LUA_MODULE),
                     "nginx with the Lua module is not installed (make deps)")
class ProxyFetchApp(unittest.TestCase):
    """apps/proxyfetch: both handler styles, against nginx."""

    @classmethod
    def setUpClass(cls):
        cls.nginx = Nginx()
        cls.gust = Server(os.path.join(ROOT, "apps", "proxyfetch", "app.lua"),
                          env={"PROXYFETCH_URL": cls.nginx.url("/static.txt")})

    @classmethod
    def tearDownClass(cls):
        cls.gust.stop()
        cls.nginx.stop()

    def test_both_styles(self):
        for path in ("/async", "/coroutine"):
            status, headers, body = get(self.gust.port, path)
            self.assertEqual(status, 200, body)
            self.assertIn(b"gust static file", body)
            self.assertIn(b"200", body)

    def test_upstream_error_is_502(self):
        status, _, body = get(self.gust.port, "/coroutine?url=" +
                              urllib.parse.quote("http://127.0.0.1:%d/" % free_port()))
        self.assertEqual(status, 502)
        self.assertIn(b"connection refused", body)


if __name__ == "__main__":
    unittest.main()

"""HTTPS serving (--tls-cert/--tls-key): a certificate made in the test with
the openssl command, real TLS clients (Python's ssl, curl), keep-alive,
streaming and static files over TLS, a plain-HTTP client on the TLS port,
and bad certificate files refused at start."""
import http.client
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

from gusttest import GUST_BIN, Server

APP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "apps", "tls_app.lua")


class TLSTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="gust-tls-")
        cls.cert = os.path.join(cls.dir, "cert.pem")
        cls.key = os.path.join(cls.dir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", cls.key, "-out", cls.cert, "-days", "1",
                        "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=60)
        cls.server = Server(APP, "--tls-cert", cls.cert, "--tls-key", cls.key)
        cls.port = cls.server.port
        cls.ctx = ssl.create_default_context(cafile=cls.cert)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def conn(self):
        return http.client.HTTPSConnection("localhost", self.port, context=self.ctx, timeout=5)

    def test_silent_connection_closed_after_the_idle_timeout(self):
        # limits.lua's idle_connection_timeout is 1 s; the second the kernel
        # holds a silent connection back (deferred accept) counts toward it,
        # over TLS as over plain HTTP.
        with Server("limits.lua", "--tls-cert", self.cert, "--tls-key", self.key) as s:
            with socket.create_connection(("127.0.0.1", s.port), timeout=5) as c:
                t0 = time.monotonic()
                try:
                    self.assertEqual(b"", c.recv(1))
                except ConnectionResetError:
                    pass
                elapsed = time.monotonic() - t0
            self.assertTrue(0.8 <= elapsed <= 1.7, "closed after %.2f s" % elapsed)

    def test_start_line_says_https(self):
        self.assertIn("https://127.0.0.1:%d" % self.port, self.server.start_line)

    def test_verified_requests_on_one_connection(self):
        c = self.conn()
        for i in range(5):
            c.request("GET", "/proto?i=%d" % i)
            r = c.getresponse()
            self.assertEqual(200, r.status)
            self.assertEqual(b"https", r.read())
        c.close()

    def test_post_body_and_streaming(self):
        c = self.conn()
        body = os.urandom(300 * 1024)
        c.request("POST", "/echo_len", body)
        r = c.getresponse()
        self.assertEqual(str(len(body)).encode(), r.read())
        c.request("GET", "/stream")
        r = c.getresponse()
        self.assertEqual("chunked", r.getheader("Transfer-Encoding"))
        self.assertEqual(b"chunk1\nchunk2\nchunk3\n", r.read())
        c.close()

    def test_static_file_over_tls(self):
        c = self.conn()
        c.request("GET", "/static/tls_app.lua")
        r = c.getresponse()
        with open(APP, "rb") as f:
            self.assertEqual(f.read(), r.read())
        self.assertEqual(200, r.status)

    def test_curl(self):
        p = subprocess.run(["curl", "-s", "--cacert", self.cert,
                            "https://localhost:%d/proto" % self.port],
                           capture_output=True, timeout=10)
        self.assertEqual(b"https", p.stdout, p.stderr)

    def test_plain_http_on_the_tls_port_is_dropped_and_server_carries_on(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                data = s.recv(100)
            except ConnectionResetError:
                data = b""
            self.assertFalse(data.startswith(b"HTTP/1.1 200"))
        c = self.conn()
        c.request("GET", "/proto")
        self.assertEqual(200, c.getresponse().status)

    def test_untrusted_certificate_is_refused_by_a_verifying_client(self):
        c = http.client.HTTPSConnection("localhost", self.port, timeout=5,
                                        context=ssl.create_default_context())
        with self.assertRaises(ssl.SSLCertVerificationError):
            c.request("GET", "/proto")


class TLSStartTest(unittest.TestCase):
    def test_missing_certificate_exits_1(self):
        p = subprocess.run([GUST_BIN, "--port", "0", "--tls-cert", "/nonexistent.pem", APP],
                           capture_output=True, timeout=10)
        self.assertEqual(1, p.returncode)
        self.assertIn(b"tls: cannot load the certificate", p.stderr)


if __name__ == "__main__":
    unittest.main()

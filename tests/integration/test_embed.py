"""The embedding API (DESIGN §5): build/gust-embed serves an app whose GET /
answers with values from a C module exposed with gust_preload(); and an
installed libgust (make install) builds that program again through
pkg-config and serves the same answer."""
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import unittest
import urllib.request

from gusttest import ROOT

BUILD = os.path.dirname(os.environ.get("GUST_BIN", os.path.join(ROOT, "build", "gust")))
APP = os.path.join(ROOT, "apps", "embed", "app.lua")


def serve(cmd, env=None):
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    line = proc.stdout.readline().decode()
    m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
    if not m:
        proc.kill()
        raise AssertionError("did not start: %r %s" % (line, proc.stderr.read().decode()))
    return proc, int(m.group(1))


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(10)
    err = proc.stderr.read().decode()
    proc.stdout.close()
    proc.stderr.close()
    return rc, err


class EmbedTest(unittest.TestCase):
    def check_answer(self, proc, port):
        with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=5) as r:
            data = json.loads(r.read())
        self.assertEqual(55, data["fib10"])
        self.assertEqual(12586269025, data["fib50"])
        self.assertEqual("gust-embed", data["program"])
        self.assertEqual(proc.pid, data["pid"])  # computed in the serving process
        self.assertEqual("0.1.0", data["gust"])

    def test_gust_embed_serves_values_from_its_c_module(self):
        proc, port = serve([os.path.join(BUILD, "gust-embed"), "--port", "0", APP])
        try:
            self.check_answer(proc, port)
        finally:
            rc, err = stop(proc)
        self.assertEqual(0, rc, err)
        self.assertNotIn("Sanitizer", err)

    def test_gust_embed_answers_c_hello_in_c(self):
        """DESIGN §5: gust_handle routes /c/hello to a C handler, ahead of the
        Lua routes, while the Lua app keeps serving the rest, on one
        keep-alive connection."""
        proc, port = serve([os.path.join(BUILD, "gust-embed"), "--port", "0", APP])
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/c/hello")
            r = conn.getresponse()
            self.assertEqual(200, r.status)
            self.assertEqual("text/plain", r.getheader("Content-Type"))
            self.assertEqual(b"Hello from C", r.read())
            conn.request("GET", "/")  # the same connection, now to Lua
            r = conn.getresponse()
            self.assertEqual(55, json.loads(r.read())["fib10"])
            conn.request("POST", "/c/hello", body=b"x")
            r = conn.getresponse()
            self.assertEqual(405, r.status)
            self.assertEqual("GET, HEAD", r.getheader("Allow"))
            r.read()
            conn.close()
        finally:
            rc, err = stop(proc)
        self.assertEqual(0, rc, err)
        self.assertNotIn("Sanitizer", err)

    @unittest.skipIf(os.environ.get("GUST_BIN", "").find("asan") >= 0,
                     "the installed library is the plain build")
    def test_installed_library_and_pkg_config(self):
        prefix = tempfile.mkdtemp(prefix="gust-install-")
        try:
            subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix], check=True,
                           capture_output=True, timeout=60)
            self.assertTrue(os.path.exists(os.path.join(prefix, "include", "gust.h")))
            self.assertTrue(os.path.exists(os.path.join(prefix, "bin", "gust")))
            env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(prefix, "lib", "pkgconfig"))
            # `pkg-config gust` alone is enough to build and to run (DESIGN §5).
            flags = subprocess.run(["pkg-config", "--cflags", "--libs", "gust"],
                                   check=True, capture_output=True, text=True, env=env).stdout.split()
            os.makedirs(os.path.join(prefix, "bin"), exist_ok=True)
            exe = os.path.join(prefix, "bin", "embed-from-pc")
            subprocess.run(["cc", "-o", exe, os.path.join(ROOT, "apps", "embed", "main.c"), *flags],
                           check=True, capture_output=True, timeout=60)
            run_env = dict(os.environ)
            run_env.pop("LD_LIBRARY_PATH", None)
            # The installed framework is found next to the program (../share/gust/lua).
            run_env.pop("GUST_LUA_DIR", None)
            proc, port = serve([exe, "--port", "0", APP], env=run_env)
            try:
                self.check_answer(proc, port)
            finally:
                rc, err = stop(proc)
            self.assertEqual(0, rc, err)
        finally:
            shutil.rmtree(prefix, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()

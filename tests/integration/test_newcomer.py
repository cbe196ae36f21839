"""The errors a newcomer makes in the first hour, answered with one clear
line each (DESIGN §3): an app that returns nothing or something that is not
an Application, no app at all, an app file that does not exist."""
import os
import shutil
import subprocess
import tempfile
import unittest

from gusttest import GUST_BIN, Server


class NewcomerErrorsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="gust-newcomer-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def app(self, text, name="app.lua"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def gust(self, *args):
        return subprocess.run([GUST_BIN, *args], capture_output=True, text=True, timeout=20)

    def check_both(self, path, got):
        want = "gust: %s must return a web.Application (got %s)\n" % (path, got)
        p = self.gust("--check", path)
        self.assertEqual((1, want), (p.returncode, p.stderr))
        p = self.gust("--port", "0", path)
        self.assertEqual(1, p.returncode)
        self.assertEqual(want, p.stderr)  # one line, no "worker failed to start"
        self.assertEqual("", p.stdout)

    def test_app_that_returns_nothing(self):
        self.check_both(self.app('local web = require "gust.web"\n'), "nil")

    def test_app_that_returns_a_number(self):
        self.check_both(self.app("return 42\n"), "number")

    def test_app_that_returns_a_plain_table(self):
        self.check_both(self.app("return {}\n"), "table")

    def test_script_with_its_own_listener_may_return_nothing(self):
        path = self.app('local core = require "gust.core"\n'
                        'core.listen(function(req) req:finish(200, nil, nil, "own") end, 0)\n')
        self.assertEqual(0, self.gust("--check", path).returncode)

    def test_a_bare_handler_function_is_served(self):
        path = self.app('return function(req) req:finish(200, nil, nil, "bare") end\n')
        with Server(path) as s:
            import http.client
            c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5)
            c.request("GET", "/")
            self.assertEqual(b"bare", c.getresponse().read())
            c.close()

    def test_bad_route_is_reported_at_the_apps_line(self):
        # `return web.Application{...}` is a tail call: the entry's own line
        path = self.app('local web = require "gust.web"\n'
                        'local H = web.RequestHandler:extend()\n'
                        'return web.Application({\n'
                        '  {"/", H},\n'
                        '  {"/x", "not a handler"},\n'
                        '})\n')
        p = self.gust("--check", path)
        self.assertEqual(1, p.returncode)
        self.assertTrue(p.stderr.startswith(
            "gust: %s:5: route #2 (/x): a RequestHandler class expected" % path), p.stderr)
        # a plain call keeps its frame: the call's line
        path = self.app('local web = require "gust.web"\n'
                        'local app = web.Application()\n'
                        'app:add_handlers({{"/y", 42}})\n'
                        'return app\n', "add.lua")
        p = self.gust("--check", path)
        self.assertTrue(p.stderr.startswith(
            "gust: %s:3: route #1 (/y): a RequestHandler class expected" % path), p.stderr)

    def test_dash_between_letters_warns(self):
        path = self.app('local web = require "gust.web"\n'
                        'local H = web.RequestHandler:extend()\n'
                        'return web.Application({{"/only-get", H}, {"/ok%-dash", H}})\n')
        p = self.gust("--check", path)
        self.assertEqual(0, p.returncode, p.stderr)
        self.assertIn('[warn] route "/only-get": \'-\' is a Lua pattern quantifier here; '
                      'write "%-" for a literal dash\n', p.stderr)
        self.assertEqual(1, p.stderr.count("quantifier"))

    def test_missing_app_argument(self):
        p = self.gust()
        self.assertEqual(2, p.returncode)
        self.assertTrue(p.stderr.startswith("gust: missing APP.lua\nusage: gust "), p.stderr)

    def test_missing_app_file_is_one_line(self):
        path = os.path.join(self.dir, "nope.lua")
        p = self.gust("--port", "0", path)
        self.assertEqual(1, p.returncode)
        self.assertEqual("gust: cannot open %s: No such file or directory\n" % path, p.stderr)

    def test_help_lists_only_what_this_build_can_do(self):
        p = self.gust("--help")
        self.assertEqual(0, p.returncode)
        self.assertNotIn("--http2", p.stdout)
        for flag in ("--block-kill", "--max-lua-memory", "--metrics", "--reload", "--redis"):
            self.assertIn(flag, p.stdout)


if __name__ == "__main__":
    unittest.main()

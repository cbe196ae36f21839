"""StaticFileHandler against a real file system (apps/static_root.lua):
symlinks that lead out of the root, and request text in log lines."""
import os
import re
import shutil
import tempfile
import unittest

from gusttest import Server, get, raw_request, status_of


def make_root():
    """A temporary tree: root/static (the static root) with links in it,
    and root/secret.txt outside it. -> (root, static)."""
    root = tempfile.mkdtemp(prefix="gust-links-")
    static = os.path.join(root, "static")
    os.mkdir(static)
    os.mkdir(os.path.join(static, "sub"))
    with open(os.path.join(static, "hello.txt"), "w") as f:
        f.write("hello inside\n")
    with open(os.path.join(static, "sub", "page.txt"), "w") as f:
        f.write("page inside\n")
    with open(os.path.join(root, "secret.txt"), "w") as f:
        f.write("secret outside\n")
    os.symlink("..", os.path.join(static, "dirlink"))               # leads out
    os.symlink("../secret.txt", os.path.join(static, "filelink"))   # leads out
    os.symlink("/etc", os.path.join(static, "etclink"))              # leads out
    os.symlink("hello.txt", os.path.join(static, "inlink"))         # stays inside
    os.symlink("sub", os.path.join(static, "sublink"))              # stays inside
    return root, static


class StaticSymlinkTest(unittest.TestCase):
    follow = "0"

    @classmethod
    def setUpClass(cls):
        cls.root, cls.static = make_root()
        cls.server = Server("static_root.lua", env={"GUST_TEST_STATIC_ROOT": cls.static,
                                                    "GUST_TEST_FOLLOW_SYMLINKS": cls.follow})
        cls.port = cls.server.port

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.stop()
        finally:
            shutil.rmtree(cls.root, ignore_errors=True)

    def test_links_inside_are_served(self):
        self.assertEqual(get(self.port, "/static/hello.txt")[::2], (200, b"hello inside\n"))
        self.assertEqual(get(self.port, "/static/inlink")[::2], (200, b"hello inside\n"))
        self.assertEqual(get(self.port, "/static/sublink/page.txt")[::2], (200, b"page inside\n"))
        self.assertEqual(get(self.port, "/static/dirlink/static/hello.txt")[::2],
                         (200, b"hello inside\n"))

    def test_links_out_are_refused(self):
        for path in ("/static/dirlink/secret.txt", "/static/filelink", "/static/etclink/passwd",
                     "/static/dirlink/static/../secret.txt", "/static/sublink/../filelink"):
            raw = raw_request(self.port, b"GET " + path.encode()
                              + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", read_timeout=3)
            self.assertIn(status_of(raw), (403, 404), (path, raw[:200]))
            self.assertNotIn(b"secret outside", raw, path)
            self.assertNotIn(b"root:", raw, path)
        self.assertEqual(get(self.port, "/static/dirlink/secret.txt")[0], 403)
        self.assertEqual(get(self.port, "/static/filelink")[0], 403)


class StaticFollowSymlinksTest(StaticSymlinkTest):
    """static_follow_symlinks = true: the app's links are its business."""
    follow = "1"

    def test_links_out_are_refused(self):
        self.skipTest("links are followed with static_follow_symlinks")

    def test_links_out_are_followed(self):
        self.assertEqual(get(self.port, "/static/dirlink/secret.txt")[::2], (200, b"secret outside\n"))
        self.assertEqual(get(self.port, "/static/filelink")[::2], (200, b"secret outside\n"))


class LogInjectionTest(unittest.TestCase):
    """Text from the request is written into log lines with its control
    bytes as \\xHH: a client cannot end a line and forge the next one."""

    FORGED = re.compile(r"^(\S+ \S+ )?\[(error|warn|info|debug)\] forged", re.M)

    @classmethod
    def setUpClass(cls):
        cls.root, cls.static = make_root()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def run_requests(self, paths):
        with Server("static_root.lua", env={"GUST_TEST_STATIC_ROOT": self.static}) as server:
            for path in paths:
                raw = raw_request(server.port, b"GET " + path
                                  + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", read_timeout=3)
                self.assertIn(status_of(raw), (403, 404, 500), (path, raw[:200]))
            server.wait_stderr(r"\\x0a.*forged", timeout=3)
        return server.stderr()

    def test_static_path(self):
        err = self.run_requests([b"/static/foo%0a[error]%20forged",
                                 b"/static/foo%0d%0a[warn]%20forged%0a/..",
                                 b"/static/dirlink/x%0a[error]%20forged"])
        self.assertIsNone(self.FORGED.search(err), err)
        self.assertIn("foo\\x0a[error] forged", err)
        self.assertIn("\\x0d\\x0a[warn] forged", err)

    def test_error_message_in_traceback(self):
        err = self.run_requests([b"/boom/x%0a[error]%20forged%0a"])
        self.assertIsNone(self.FORGED.search(err), err)
        self.assertIn("cannot do x\\x0a[error] forged\\x0a", err)
        # the traceback itself keeps its lines
        self.assertRegex(err, r"\nstack traceback:\n")

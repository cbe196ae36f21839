"""The --redis demo end to end (README): apps/chat, unchanged, on two gust
servers sharing one redis-server, behind HAProxy with the demo's own
apps/chat/haproxy.cfg (its ports swapped for free ones). A message posted
through HAProxy and handled by one server reaches a WebSocket client and a
long-polling client held by the other."""
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse

from gusttest import ROOT, RedisServer, Server, _die_with_parent, free_port, get
from test_websocket import OP_TEXT, RawWS, fetch

CHAT = os.path.join(ROOT, "apps", "chat", "app.lua")
CFG = os.path.join(ROOT, "apps", "chat", "haproxy.cfg")


def worker_pids(server):
    pid = server.proc.pid
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        return {int(p) for p in f.read().split()}


def stats(server):
    return json.loads(get(server.port, "/a/stats")[2])


class HAProxy:
    def __init__(self, backends):
        self.port = free_port()
        with open(CFG) as f:
            cfg = f.read()
        cfg = cfg.replace("127.0.0.1:8080", "127.0.0.1:%d" % self.port)
        for demo, port in zip((8881, 8882), backends):
            cfg = cfg.replace("127.0.0.1:%d" % demo, "127.0.0.1:%d" % port)
        self.dir = tempfile.mkdtemp(prefix="gust-haproxy-")
        path = os.path.join(self.dir, "haproxy.cfg")
        with open(path, "w") as f:
            f.write(cfg)
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", path], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("haproxy did not start")
                time.sleep(0.02)

    def close(self):
        self.proc.kill()
        self.proc.wait()
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)


class ChatAcrossServers(unittest.TestCase):
    def setUp(self):
        self.redis = RedisServer()
        self.addCleanup(self.redis.close)
        self.servers = []
        for _ in range(2):
            s = Server(CHAT, "--redis", self.redis.url())
            self.addCleanup(s.stop)
            self.servers.append(s)
        for s in self.servers:
            self.assertTrue(s.wait_stderr(r"redis: pub/sub spans servers", 5), s.stderr())
        self.pids = [worker_pids(s) for s in self.servers]
        self.proxy = HAProxy([s.port for s in self.servers])
        self.addCleanup(self.proxy.close)

    def post(self, body):
        """Posts through HAProxy; returns (message, index of the server that took it)."""
        status, data = fetch(self.proxy.port, "/a/message/new", "POST",
                                urllib.parse.urlencode({"body": body}),
                                {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(200, status, data)
        msg = json.loads(data)
        pid = int(msg["id"].split("-")[1])
        return msg, [i for i, pids in enumerate(self.pids) if pid in pids][0]

    def wait_server_with(self, key, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, s in enumerate(self.servers):
                if stats(s)[key] >= 1:
                    return i
            time.sleep(0.02)
        self.fail("no server has a %s client" % key)

    def test_websocket_and_long_poll_get_messages_posted_on_the_other_server(self):
        ws = RawWS(self.proxy.port, "/chatsocket")
        self.assertEqual(101, ws.status)
        self.assertEqual([], json.loads(ws.recv()[1])["messages"])
        ws_server = self.wait_server_with("sockets")
        # post until HAProxy hands a post to the other server
        for i in range(6):
            msg, where = self.post("to the socket %d" % i)
            if where != ws_server:
                break
        self.assertNotEqual(ws_server, where, "every post went to the socket's server")
        ws.sock.settimeout(5)
        while True:
            op, data = ws.recv()
            self.assertEqual(OP_TEXT, op)
            got = json.loads(data)["messages"]
            if any(m["id"] == msg["id"] for m in got):
                break
        ws.close()

        # a long poll held by one server, a post taken by the other
        cursor = msg["id"]
        for attempt in range(6):
            result = {}
            t = threading.Thread(target=lambda c=cursor: result.update(r=fetch(
                self.proxy.port, "/a/message/updates", "POST",
                urllib.parse.urlencode({"cursor": c}),
                {"Content-Type": "application/x-www-form-urlencoded"})))
            t.start()
            poll_server = self.wait_server_with("waiting")
            posted, where = self.post("to the poll %d" % attempt)
            t.join(10)
            status, data = result["r"]
            self.assertEqual(200, status)
            ids = [m["id"] for m in json.loads(data)["messages"]]
            self.assertIn(posted["id"], ids)
            cursor = posted["id"]
            if where != poll_server:
                break
        self.assertNotEqual(poll_server, where, "every post went to the poll's server")


if __name__ == "__main__":
    unittest.main()

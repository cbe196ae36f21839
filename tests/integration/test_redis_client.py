"""gust.redis (DESIGN §4.9) from handlers, against a real redis-server on a
free loopback port: every reply type and error replies, a pipeline of 1,000
commands, timeouts against a SIGSTOPped Redis while the worker serves on,
one pooled TCP connection for 100 sequential requests, 200 concurrent
handlers sharing the pool, subscriptions, a connection killed under a
client, AUTH and SELECT from the URL, a Unix socket."""
import json
import threading
import time
import unittest
import urllib.parse

from gusttest import RedisServer, Server, get


def fetch_json(port, path, timeout=20):
    status, _, body = get(port, path, timeout=timeout)
    assert status == 200, (status, body)
    return json.loads(body)


class Client(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer()
        cls.server = Server("redis_client.lua", env={"REDIS_URL": cls.redis.url(db=5)})
        cls.port = cls.server.port

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.stop()
        finally:
            cls.redis.close()

    def test_reply_types(self):
        t = fetch_json(self.port, "/types")
        self.assertEqual("string:OK", t["set"])
        self.assertEqual("string:v", t["get"])
        self.assertEqual("null", t["missing"])
        self.assertEqual("number:1", t["incr"])
        self.assertEqual("number:42", t["incrby"])
        self.assertEqual("number:3", t["rpush"])
        self.assertEqual("table:[string:a,string:2,string:]", t["lrange"])
        self.assertEqual("number:1", t["hset"])
        self.assertEqual("table:[string:x,null]", t["hmget"])
        self.assertTrue(t["error"].startswith("error:WRONGTYPE "), t["error"])
        self.assertTrue(t["unknown"].startswith("error:ERR unknown command"), t["unknown"])
        self.assertEqual("string:PONG", t["status"])
        self.assertEqual("string:OK,number:6", t["binary"])
        # MULTI/EXEC in a pipeline: an error inside EXEC's array is {false, msg}
        self.assertRegex(t["exec"], r"^table:\[string:OK,string:QUEUED,string:QUEUED,"
                                    r"table:\[number:43,error:WRONGTYPE [^\]]*\]\]$")
        # the handler used database 5 of the URL
        self.assertEqual(b"v", self.redis.client_db(5)("GET", "t:s"))

    def test_pipeline_of_1000_commands(self):
        self.assertEqual(b"ok 1000", get(self.port, "/pipeline?n=1000")[2])

    def test_misuse_raises(self):
        t = fetch_json(self.port, "/misuse")
        self.assertIn("false", t["table_arg"])
        self.assertIn("string or number expected, got table", t["table_arg"])
        self.assertIn("string or number expected, got nil", t["nil_arg"])

    def test_timeout_against_a_stopped_redis_blocks_only_its_caller(self):
        get(self.port, "/get?timeout=5")  # a pooled connection exists
        result = {}
        self.redis.pause()
        try:
            t = threading.Thread(target=lambda: result.update(
                r=fetch_json(self.port, "/get?timeout=0.5")))
            t0 = time.monotonic()
            t.start()
            # the worker serves others meanwhile
            for _ in range(5):
                status, _, body = get(self.port, "/ping", timeout=2)
                self.assertEqual((200, b"pong"), (status, body))
            self.assertLess(time.monotonic() - t0, 0.45)
            t.join(10)
        finally:
            self.redis.resume()
        r = result["r"]
        self.assertEqual("error:timeout", r["got"])
        self.assertGreaterEqual(r["elapsed"], 0.45)
        self.assertLess(r["elapsed"], 2.0)
        self.assertEqual("error:closed", r["after"])  # a timed-out connection is closed
        # and the next request gets a good one
        self.assertEqual("string:PONG", fetch_json(self.port, "/get?timeout=5")["after"])

    def test_pool_one_connection_for_100_sequential_requests(self):
        get(self.port, "/clientid")
        before = self.redis_stat("total_connections_received")
        ids = {get(self.port, "/clientid")[2] for _ in range(100)}
        self.assertEqual(1, len(ids), ids)
        # the one more is the INFO connection of redis_stat itself
        self.assertEqual(before + 1, self.redis_stat("total_connections_received"))

    def test_200_concurrent_handlers_share_the_pool(self):
        self.redis_db(5)("DEL", "c:count")
        for wave in (1, 2):
            results = []
            threads = [threading.Thread(target=lambda: results.append(
                get(self.port, "/incr", timeout=20)[2])) for _ in range(200)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            self.assertEqual(200, len(results))
            self.assertTrue(all(r.startswith(b"number:") for r in results), results[:3])
            self.assertEqual(b"%d" % (200 * wave), self.redis_db(5)("GET", "c:count"))
            pooled = int(get(self.port, "/pooled")[2])
            self.assertLessEqual(pooled, 32)
            self.assertGreater(pooled, 0)
            clients = self.redis("CLIENT", "LIST").count(b"\n")
            self.assertLessEqual(clients, 32 + 1)

    def test_subscribe(self):
        result = {}
        t = threading.Thread(target=lambda: result.update(
            r=fetch_json(self.port, "/subscribe?ch=news")))
        t.start()
        deadline = time.monotonic() + 10
        k, heard = 0, []  # the messages the channel's subscription heard
        while time.monotonic() < deadline:
            k += 1  # until both the channel and the pattern are subscribed
            n = self.redis("PUBLISH", "news", "hello %d" % k)
            if n >= 1:
                heard.append("news=hello %d" % k)
            if n == 2:
                break
            time.sleep(0.02)
        t.join(15)
        r = result["r"]
        # every message once on the channel, the last one also by the pattern
        self.assertEqual(heard + ["news*>news=hello %d" % k], r["got"])
        self.assertTrue(r["get_in_sub"].startswith("error:ERR "), r["get_in_sub"])
        self.assertEqual("error:closed", r["after_close"])

    def test_broken_connection_answers_closed(self):
        r = fetch_json(self.port, "/broken")
        self.assertEqual("number:1", r["killed"])
        self.assertEqual("error:closed", r["after"])

    def redis_stat(self, name):
        info = self.redis("INFO", "stats").decode()
        for line in info.splitlines():
            if line.startswith(name + ":"):
                return int(line.split(":")[1])
        raise KeyError(name)

    def redis_db(self, db):
        return self.redis.client_db(db)


class AuthAndUnix(unittest.TestCase):
    def test_auth_select_from_url_and_unix_socket(self):
        with RedisServer(password="s3cr%t") as redis:
            with Server("redis_client.lua", env={"REDIS_URL": "redis://:s3cr%%25t@127.0.0.1:%d/3"
                                                 % redis.port}) as s:
                t = fetch_json(s.port, "/types")
                self.assertEqual("string:v", t["get"])
                self.assertEqual(b"v", redis.client_db(3)("GET", "t:s"))
                self.assertIsNone(redis.client_db(0)("GET", "t:s"))
                bad = urllib.parse.quote("redis://:wrong@127.0.0.1:%d" % redis.port)
                status, _, body = get(s.port, "/clientid?url=" + bad)
                self.assertTrue(body.startswith(b"error:WRONGPASS") or
                                body.startswith(b"error:ERR invalid password"), body)
                unix = urllib.parse.quote("unix://" + redis.unix)
                status, _, body = get(s.port, "/clientid?url=" + unix)
                self.assertTrue(body.startswith(b"error:NOAUTH"), body)  # no password given
        with RedisServer() as redis:
            with Server("redis_client.lua", env={"REDIS_URL": "unix://" + redis.unix}) as s:
                self.assertEqual("string:v", fetch_json(s.port, "/types")["get"])
                nowhere = urllib.parse.quote("unix://" + redis.dir + "/no.sock")
                self.assertEqual(b"error:No such file or directory",
                                 get(s.port, "/clientid?url=" + nowhere)[2])


if __name__ == "__main__":
    unittest.main()

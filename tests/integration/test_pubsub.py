"""gust.pubsub (DESIGN §4.9): a message published in one worker reaches
subscribers in every worker of the server (the master relays), and in the
publishing worker itself; oversize messages are refused."""
import http.client
import threading
import time
import unittest
import urllib.parse

from gusttest import Server, spread_connections


def request(port, method, path, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path)
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    return r.status, body


class PubSubAcrossWorkers(unittest.TestCase):
    def test_every_waiter_in_every_worker_gets_the_message(self):
        with Server("pubsub.lua", "--workers", "2") as s:
            # Three keep-alive connections in each worker (a connection stays
            # with the worker that accepted it): two to wait, one to ask and
            # publish.
            by_pid = spread_connections(s.port, 3)
            opened = [c for cs in by_pid.values() for c in cs]
            try:
                results = []

                def wait(pid, c):
                    c.request("GET", "/wait?ch=room")
                    r = c.getresponse()
                    results.append((pid, r.status, r.read().decode()))

                threads = [threading.Thread(target=wait, args=(pid, c))
                           for pid, cs in by_pid.items() for c in cs[:2]]
                for t in threads:
                    t.start()

                def ask(c, method, path):
                    c.request(method, path)
                    r = c.getresponse()
                    return r.status, r.read().decode()

                # Every waiter subscribed, in its own worker, before the message.
                deadline = time.monotonic() + 10
                for pid, cs in by_pid.items():
                    while ask(cs[2], "GET", "/count?ch=room") != (200, "2"):
                        self.assertLess(time.monotonic(), deadline, "worker %s: waiters not subscribed" % pid)
                        time.sleep(0.02)
                publisher = next(iter(by_pid.values()))[2]
                status, body = ask(publisher, "POST", "/pub?ch=room&msg=hello")
                self.assertEqual(200, status, body)
                for t in threads:
                    t.join(10)
                self.assertEqual(sorted((pid, 200, "room:hello " + pid) for pid in by_pid for _ in range(2)),
                                 sorted(results))
            finally:
                for c in opened:
                    c.close()

    def test_other_channels_do_not_hear_it(self):
        with Server("pubsub.lua", "--workers", "2") as s:
            result = {}
            t = threading.Thread(target=lambda: result.update(
                r=request(s.port, "GET", "/wait?ch=other&timeout=1")))
            t.start()
            time.sleep(0.3)
            request(s.port, "POST", "/pub?ch=room&msg=x")
            t.join(5)
            self.assertEqual(504, result["r"][0])

    def test_oversize_message_refused(self):
        with Server("pubsub.lua") as s:
            big = urllib.parse.quote("x" * (70 * 1024))
            c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
            c.request("POST", "/pub?ch=room", "msg=" + big,
                      {"Content-Type": "application/x-www-form-urlencoded"})
            r = c.getresponse()
            self.assertEqual(b"message too large", r.read())


if __name__ == "__main__":
    unittest.main()

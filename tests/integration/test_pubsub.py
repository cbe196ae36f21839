"""gust.pubsub (DESIGN §4.9): a message published in one worker reaches
subscribers in every worker of the server (the master relays), and in the
publishing worker itself; oversize messages are refused."""
import http.client
import threading
import time
import unittest
import urllib.parse

from gusttest import Server


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
            results = []

            def wait():
                results.append(request(s.port, "GET", "/wait?ch=room"))

            # Enough waiters on separate connections that both workers hold some.
            threads = [threading.Thread(target=wait) for _ in range(12)]
            for t in threads:
                t.start()
            time.sleep(0.5)
            status, body = request(s.port, "POST", "/pub?ch=room&msg=hello")
            self.assertEqual(200, status, body)
            for t in threads:
                t.join(10)
            self.assertEqual(12, len(results))
            self.assertTrue(all(st == 200 and b.startswith("room:hello ") for st, b in results),
                            results)
            pids = {b.split()[1] for _, b in results}
            self.assertEqual(2, len(pids), "waiters were not spread over both workers: %r" % pids)

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

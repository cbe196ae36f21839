"""Long polling (DESIGN §4.5): a handler waiting on a Condition or a Queue
is woken with nil, "closed" when its client disconnects, even when it does
not define on_connection_close, and a later notify reaches live waiters."""
import http.client
import json
import socket
import time

from gusttest import GustTestCase


class LongPollTest(GustTestCase):
    app = "longpoll.lua"

    def stats(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        conn.request("GET", "/stats")
        data = json.loads(conn.getresponse().read())
        conn.close()
        return data

    def wait_for(self, pred, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.stats()
            if pred(s):
                return s
            time.sleep(0.02)
        self.fail("condition not reached: %r" % self.stats())

    def leave_while_waiting(self, path):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        return s

    def test_disconnect_wakes_condition_and_queue_waits(self):
        before = self.stats()
        a = self.leave_while_waiting(b"/cond")
        b = self.leave_while_waiting(b"/queue")
        self.wait_for(lambda s: s["waiting"] == before["waiting"] + 2)
        a.close()
        b.close()
        s = self.wait_for(lambda s: s["waiting"] == before["waiting"])
        self.assertEqual(before["cond_closed"] + 1, s["cond_closed"])
        self.assertEqual(before["queue_closed"] + 1, s["queue_closed"])

    def test_finish_of_a_request_already_over_says_closed(self):
        for how in (b"plain", b"headers"):
            s = self.leave_while_waiting(b"/late/" + how)
            self.assertEqual(b"", s.recv(4096))  # cut without an answer
            s.close()
        s = self.wait_for(lambda s: "late_plain" in s and "late_headers" in s)
        self.assertEqual("nil closed", s["late_plain"])
        self.assertEqual("nil closed", s["late_headers"])

    def test_leaver_whose_handler_returned_wakes_no_other_wait(self):
        # /async's handler returns without finishing, so its coroutine is
        # free again and the next request, a wait, runs in it: the client
        # of /async leaving must not wake that wait.
        before = self.stats()
        leaver = self.leave_while_waiting(b"/async")
        self.wait_for(lambda s: s["async"] == before["async"] + 1)
        live = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        live.request("GET", "/cond")
        self.wait_for(lambda s: s["waiting"] == before["waiting"] + 1)
        leaver.close()
        self.wait_for(lambda s: s["async_closed"] == before["async_closed"] + 1)
        s = self.stats()
        self.assertEqual(before["waiting"] + 1, s["waiting"])
        self.assertEqual(before["cond_closed"], s["cond_closed"])
        poster = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        poster.request("POST", "/notify", "item=x",
                       {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(200, poster.getresponse().status)
        resp = live.getresponse()
        self.assertEqual(b"woken", resp.read())
        self.wait_for(lambda s: s["waiting"] == before["waiting"])
        # /notify also queued its item: take it, for the other tests
        taker = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        taker.request("GET", "/queue")
        self.assertEqual(b"x", taker.getresponse().read())

    def test_live_waiter_still_gets_the_item_after_a_leaver(self):
        leaver = self.leave_while_waiting(b"/queue")
        self.wait_for(lambda s: s["waiting"] >= 1)
        leaver.close()
        self.wait_for(lambda s: s["waiting"] == 0)
        live = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        live.request("GET", "/queue")
        self.wait_for(lambda s: s["waiting"] == 1)
        poster = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        poster.request("POST", "/notify", "item=hello",
                       {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(200, poster.getresponse().status)
        resp = live.getresponse()
        self.assertEqual(200, resp.status)
        self.assertEqual(b"hello", resp.read())

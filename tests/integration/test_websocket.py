"""WebSocket (DESIGN §4.4, §4.9) against the real server, with a raw-socket
client written here: the handshake and its refusals (400, 403, 405, 426),
echo of text and binary at every length encoding, fragmentation with
interleaved control frames, ping/pong both ways, the close handshake and
its codes, the limits (1009), UTF-8 (1007), protocol errors (1002), a
handler error (1011), the ping timeout, the slow-client rule (1008),
permessage-deflate, and the chat app's /chatsocket. After every bad input
the server must still serve.

Many cases follow the Autobahn TestSuite's numbering (1.x framing, 2.x
pings, 3.x reserved bits, 4.x opcodes, 5.x fragmentation, 6.x UTF-8, 7.x
close, 9.x sizes, 12.x/13.x compression), reproduced by hand.
"""
import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse
import zlib

from gusttest import ROOT, GustTestCase, Server

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CHAT = os.path.join(ROOT, "apps", "chat", "app.lua")

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
RSV1 = 4  # rsv argument: RSV1 is the high bit of the three


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def mask(payload, key):
    if not payload:
        return b""
    n = len(payload)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def frame(opcode, payload=b"", fin=True, rsv=0, masked=True, key=None):
    """One frame as bytes; masked with a random key unless told."""
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    m = 0x80 if masked else 0
    if n < 126:
        head = struct.pack("!BB", b0, m | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, m | 126, n)
    else:
        head = struct.pack("!BBQ", b0, m | 127, n)
    if masked:
        key = key or os.urandom(4)
        return head + key + mask(payload, key)
    return head + payload


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


class RawWS:
    """A WebSocket client on a plain socket. The handshake is sent as
    given (headers=None values drop a default header); status and headers
    of the answer are kept; frames are built and read by hand."""

    def __init__(self, port, path="/echo", headers=None, key=None, timeout=5, extra=b"",
                 extensions=None, subprotocols=None, rcvbuf=None, method="GET", tls=None):
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        if tls:
            self.sock = tls.wrap_socket(self.sock, server_hostname="localhost")
        self.buf = b""
        self.inflater = None
        self.deflater = None
        self.key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
        h = {"Host": "127.0.0.1:%d" % port, "Upgrade": "websocket", "Connection": "Upgrade",
             "Sec-WebSocket-Key": self.key, "Sec-WebSocket-Version": "13"}
        if extensions:
            h["Sec-WebSocket-Extensions"] = extensions
        if subprotocols:
            h["Sec-WebSocket-Protocol"] = ", ".join(subprotocols)
        h.update(headers or {})
        lines = ["%s %s HTTP/1.1" % (method, path)]
        lines += ["%s: %s" % (k, v) for k, v in h.items() if v is not None]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + extra)
        self.status, self.headers = self._read_head()
        self.accept_ok = self.header("Sec-WebSocket-Accept") == accept_for(self.key)

    def _fill(self, n):
        while len(self.buf) < n:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("connection closed")
            self.buf += data

    def _read_head(self):
        while b"\r\n\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("closed during the handshake: %r" % self.buf)
            self.buf += data
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = []
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.append((k.strip().lower(), v.strip()))
        return status, headers

    def header(self, name):
        vals = [v for k, v in self.headers if k == name.lower()]
        return vals[-1] if vals else None

    def use_deflate(self, no_context_takeover=False):
        self.inflater = zlib.decompressobj(-15)
        self.deflater = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        self.no_takeover = no_context_takeover

    # -- sending

    def send(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", **kw):
        self.sock.sendall(frame(opcode, payload, **kw))

    def send_text(self, text):
        self.send_frame(OP_TEXT, text.encode() if isinstance(text, str) else text)

    def send_binary(self, data):
        self.send_frame(OP_BINARY, data)

    def send_compressed(self, data, opcode=OP_TEXT):
        out = self.deflater.compress(data) + self.deflater.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(b"\x00\x00\xff\xff")
        self.send_frame(opcode, out[:-4], rsv=RSV1)

    def close(self, code=1000, reason=b""):
        self.send_frame(OP_CLOSE, close_payload(code, reason) if code is not None else b"")

    # -- receiving

    def recv_frame(self):
        """(fin, rsv, opcode, payload); EOFError when the server closed."""
        self._fill(2)
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._fill(4)
            n = struct.unpack("!H", self.buf[2:4])[0]
            off = 4
        elif n == 127:
            self._fill(10)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            off = 10
        if b1 & 0x80:
            raise AssertionError("the server sent a masked frame")
        self._fill(off + n)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, payload

    def recv(self, answer_pings=False):
        """The next message or control frame as (opcode, payload): a
        fragmented message is joined and a compressed one inflated."""
        parts, first, compressed = [], None, False
        while True:
            fin, rsv, op, payload = self.recv_frame()
            if op >= 8:
                if op == OP_PING and answer_pings:
                    self.send_frame(OP_PONG, payload)
                    continue
                return op, payload
            if first is None:
                first, compressed = op, bool(rsv & RSV1)
            parts.append(payload)
            if fin:
                data = b"".join(parts)
                if compressed:
                    data = self.inflater.decompress(data + b"\x00\x00\xff\xff")
                    if self.no_takeover:
                        self.inflater = zlib.decompressobj(-15)
                return first, data

    def recv_close(self):
        """Reads until the close frame: (code or None, reason bytes)."""
        while True:
            op, payload = self.recv()
            if op == OP_CLOSE:
                if len(payload) >= 2:
                    return struct.unpack("!H", payload[:2])[0], payload[2:]
                return None, payload

    def wait_eof(self, timeout=5):
        """True once the server has closed the TCP connection."""
        self.sock.settimeout(timeout)
        try:
            while True:
                if self.buf:
                    self.buf = b""
                if not self.sock.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return True
        except socket.timeout:
            return False

    def close_socket(self):
        self.sock.close()


def fetch(port, path, method="GET", body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request(method, path, body, headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


class WebSocketTestBase(GustTestCase):
    def connect(self, path="/echo", **kw):
        ws = RawWS(self.port, path, **kw)
        self.assertEqual(101, ws.status, ws.headers)
        self.assertTrue(ws.accept_ok)
        return ws

    def assert_serving(self):
        status, body = fetch(self.port, "/hello")
        self.assertEqual((200, b"hello"), (status, body))
        ws = self.connect()
        ws.send_text("still here")
        self.assertEqual((OP_TEXT, b"still here"), ws.recv())
        ws.close()
        ws.recv_close()
        ws.close_socket()

    def expect_close(self, ws, code):
        """The server closes with `code`, then ends the TCP connection."""
        got, _ = ws.recv_close()
        self.assertEqual(code, got)
        ws.close(code if code not in (1005, 1006) else 1000)
        self.assertTrue(ws.wait_eof())
        ws.close_socket()

    def stats(self):
        return json.loads(fetch(self.port, "/stats")[1])

    def wait_stats(self, pred, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.stats()
            if pred(s):
                return s
            time.sleep(0.05)
        self.fail("stats never matched: %r" % self.stats())


class HandshakeTest(WebSocketTestBase):
    app = "ws_app.lua"

    def test_accept_and_upgrade_headers(self):
        ws = self.connect()
        self.assertEqual("websocket", ws.header("Upgrade").lower())
        self.assertIn("upgrade", ws.header("Connection").lower())
        self.assertIsNone(ws.header("Sec-WebSocket-Protocol"))
        self.assertIsNone(ws.header("Sec-WebSocket-Extensions"))
        ws.close_socket()

    def test_rfc_example_key(self):
        # RFC 6455 1.3: the sample nonce and its accept value.
        ws = self.connect(key="dGhlIHNhbXBsZSBub25jZQ==")
        self.assertEqual("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", ws.header("Sec-WebSocket-Accept"))
        ws.close_socket()

    def test_426_on_other_versions(self):
        for version in ("8", "12", "14", None, "abc"):
            ws = RawWS(self.port, headers={"Sec-WebSocket-Version": version})
            self.assertEqual(426, ws.status, version)
            self.assertEqual("13", ws.header("Sec-WebSocket-Version"))
            ws.close_socket()
        self.assert_serving()

    def test_400_on_bad_keys(self):
        for key in (None, "", "short", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZQ=!",
                    base64.b64encode(b"x" * 15).decode(), base64.b64encode(b"x" * 17).decode(),
                    "%%%%%%%%%%%%%%%%%%%%%%==" ):
            ws = RawWS(self.port, headers={"Sec-WebSocket-Key": key})
            self.assertEqual(400, ws.status, key)
            ws.close_socket()
        self.assert_serving()

    def test_400_without_upgrade_or_connection(self):
        for headers in ({"Upgrade": None}, {"Upgrade": "h2c"}, {"Connection": None},
                        {"Connection": "keep-alive"}):
            ws = RawWS(self.port, headers=headers)
            self.assertEqual(400, ws.status, headers)
            ws.close_socket()
        # Token lists and any case are fine.
        ws = RawWS(self.port, headers={"Upgrade": "WebSocket", "Connection": "keep-alive, Upgrade"})
        self.assertEqual(101, ws.status)
        ws.close_socket()
        # A plain GET from a browser that is not a WebSocket.
        status, _ = fetch(self.port, "/echo")
        self.assertEqual(400, status)
        self.assert_serving()

    def test_403_cross_origin(self):
        ws = RawWS(self.port, headers={"Origin": "http://evil.example"})
        self.assertEqual(403, ws.status)
        ws.close_socket()
        ws = RawWS(self.port, headers={"Origin": "http://127.0.0.1:%d" % self.port})
        self.assertEqual(101, ws.status)
        ws.close_socket()
        ws = RawWS(self.port, "/anyorigin", headers={"Origin": "http://evil.example"})
        self.assertEqual(101, ws.status)
        ws.close_socket()
        self.assert_serving()

    def test_405_for_other_methods(self):
        ws = RawWS(self.port, method="POST", headers={"Content-Length": "0"})
        self.assertEqual(405, ws.status)
        self.assertIn("GET", ws.header("Allow"))
        ws.close_socket()
        self.assert_serving()

    def test_subprotocol(self):
        ws = self.connect("/proto", subprotocols=["foo", "chat"])
        self.assertEqual("chat", ws.header("Sec-WebSocket-Protocol"))
        self.assertEqual((OP_TEXT, b"proto=chat"), ws.recv())
        ws.close_socket()
        ws = self.connect("/proto", subprotocols=["foo"])
        self.assertIsNone(ws.header("Sec-WebSocket-Protocol"))
        self.assertEqual((OP_TEXT, b"proto=nil"), ws.recv())
        ws.close_socket()

    def test_route_captures_reach_open(self):
        ws = self.connect("/echo/alice")
        self.assertEqual((OP_TEXT, b"hello alice"), ws.recv())
        ws.close_socket()

    def test_frames_sent_with_the_handshake(self):
        ws = self.connect(extra=frame(OP_TEXT, b"early") + frame(OP_TEXT, b"bird"))
        self.assertEqual((OP_TEXT, b"early"), ws.recv())
        self.assertEqual((OP_TEXT, b"bird"), ws.recv())
        ws.close_socket()

    def test_no_compression_unless_enabled(self):
        ws = self.connect(extensions="permessage-deflate; client_max_window_bits")
        self.assertIsNone(ws.header("Sec-WebSocket-Extensions"))
        ws.close_socket()


class EchoTest(WebSocketTestBase):
    app = "ws_app.lua"

    def test_text_and_binary(self):
        ws = self.connect()
        ws.send_text("hello")
        self.assertEqual((OP_TEXT, b"hello"), ws.recv())
        ws.send_text("κόσμε ☃ 𝄞")
        self.assertEqual((OP_TEXT, "κόσμε ☃ 𝄞".encode()), ws.recv())
        ws.send_binary(bytes(range(256)))
        self.assertEqual((OP_BINARY, bytes(range(256))), ws.recv())
        ws.send_text("")
        self.assertEqual((OP_TEXT, b""), ws.recv())
        ws.send_text("json")
        op, data = ws.recv()
        self.assertEqual({"hello": "world", "n": 1}, json.loads(data))
        ws.close_socket()

    def test_lengths_at_every_encoding(self):
        # Autobahn 1.1.x / 1.2.x: 7-bit, 16-bit lengths up to the limit.
        ws = self.connect()
        for n in (0, 1, 125, 126, 127, 128, 65535, 65536):
            data = bytes((i * 31) & 0xFF for i in range(n))
            ws.send_binary(data)
            op, got = ws.recv()
            self.assertEqual(OP_BINARY, op)
            self.assertEqual(data, got, n)
        ws.close_socket()

    def test_fragmented_with_interleaved_control_frames(self):
        # Autobahn 5.6-5.9, 5.15 / 5.19-style.
        ws = self.connect()
        ws.send_frame(OP_TEXT, b"frag", fin=False)
        ws.send_frame(OP_PING, b"in the middle")
        ws.send_frame(OP_CONT, b"men", fin=False)
        ws.send_frame(OP_PONG, b"unsolicited")
        ws.send_frame(OP_CONT, b"ted", fin=True)
        self.assertEqual((OP_PONG, b"in the middle"), ws.recv())
        self.assertEqual((OP_TEXT, b"fragmented"), ws.recv())
        ws.send_text("next")
        self.assertEqual((OP_TEXT, b"next"), ws.recv())  # the pong was not echoed
        # One byte per fragment, a character split across fragments.
        text = "a☃b".encode()
        for i, b in enumerate(text):
            ws.send_frame(OP_TEXT if i == 0 else OP_CONT, bytes([b]), fin=i == len(text) - 1)
        self.assertEqual((OP_TEXT, text), ws.recv())
        # Fragments with empty payloads.
        ws.send_frame(OP_BINARY, b"", fin=False)
        ws.send_frame(OP_CONT, b"", fin=False)
        ws.send_frame(OP_CONT, b"x", fin=True)
        self.assertEqual((OP_BINARY, b"x"), ws.recv())
        ws.close_socket()

    def test_frames_split_across_packets(self):
        ws = self.connect()
        data = frame(OP_TEXT, b"byte by byte") + frame(OP_PING, b"p")
        for i in range(len(data)):
            ws.send(data[i:i + 1])
            time.sleep(0.001)
        # The pong is the core's, the echo the handler's: either may be first.
        got = {ws.recv(), ws.recv()}
        self.assertEqual({(OP_TEXT, b"byte by byte"), (OP_PONG, b"p")}, got)
        ws.close_socket()

    def test_ping_pong(self):
        # Autobahn 2.1-2.4, 2.10: pings answered with their payload, in order.
        ws = self.connect()
        ws.send_frame(OP_PING, b"")
        self.assertEqual((OP_PONG, b""), ws.recv())
        payload = bytes(range(125))
        ws.send_frame(OP_PING, payload)
        self.assertEqual((OP_PONG, payload), ws.recv())
        for i in range(10):
            ws.send_frame(OP_PING, b"p%d" % i)
        for i in range(10):
            self.assertEqual((OP_PONG, b"p%d" % i), ws.recv())
        # An unsolicited pong is ignored (2.7).
        ws.send_frame(OP_PONG, b"nobody asked")
        ws.send_text("after")
        self.assertEqual((OP_TEXT, b"after"), ws.recv())
        ws.close_socket()

    def test_server_ping_and_on_pong(self):
        ws = self.connect()
        ws.send_text("ping:abc")
        self.assertEqual((OP_PING, b"abc"), ws.recv())
        ws.send_frame(OP_PONG, b"abc")
        self.assertEqual((OP_TEXT, b"pong:abc"), ws.recv())
        ws.close_socket()

    def test_messages_stay_in_order_with_a_slow_handler(self):
        ws = self.connect("/slow")
        for i in range(20):
            ws.send_text("m%d" % i)
        for i in range(20):
            self.assertEqual((OP_TEXT, b"m%d" % i), ws.recv())
        ws.close_socket()

    def test_many_connections_at_once(self):
        socks = [self.connect() for _ in range(20)]
        for i, ws in enumerate(socks):
            ws.send_text("c%d" % i)
        for i, ws in enumerate(socks):
            self.assertEqual((OP_TEXT, b"c%d" % i), ws.recv())
            ws.close_socket()


class CloseTest(WebSocketTestBase):
    app = "ws_app.lua"

    def test_client_close_is_echoed_and_on_close_sees_it(self):
        # Autobahn 7.1.1, 7.3.x
        ws = self.connect()
        ws.close(1000, b"bye")
        code, _ = ws.recv_close()
        self.assertEqual(1000, code)
        self.assertTrue(ws.wait_eof())
        s = self.wait_stats(lambda s: s["codes"].get("echo") == 1000
                            and s["reasons"].get("echo") == "bye")
        self.assertEqual(1000, s["codes"]["echo"])

    def test_empty_close(self):
        ws = self.connect()
        ws.close(None)
        code, reason = ws.recv_close()
        self.assertIsNone(code)
        self.assertTrue(ws.wait_eof())
        self.wait_stats(lambda s: s["codes"].get("echo") == 1005)

    def test_valid_codes_are_echoed(self):
        # Autobahn 7.7.x
        for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000,
                     4999):
            ws = self.connect()
            ws.close(code, b"r")
            got, _ = ws.recv_close()
            self.assertEqual(code, got)
            self.assertTrue(ws.wait_eof())

    def test_invalid_codes_get_1002(self):
        # Autobahn 7.9.x: never on the wire, unassigned, out of range.
        for code in (0, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015, 1016, 1100, 2000, 2999,
                     5000, 65535):
            ws = self.connect()
            ws.close(code)
            self.expect_close(ws, 1002)
        self.assert_serving()

    def test_close_payload_errors(self):
        # Autobahn 7.3.2 (1-byte payload) and 7.5.1 (reason not UTF-8).
        ws = self.connect()
        ws.send_frame(OP_CLOSE, b"\x03")
        self.expect_close(ws, 1002)
        ws = self.connect()
        ws.send_frame(OP_CLOSE, close_payload(1000, b"\xce\xba\xed\xa0\x80"))
        self.expect_close(ws, 1007)
        # Autobahn 7.3.6: a 125-byte close payload is fine.
        ws = self.connect()
        ws.send_frame(OP_CLOSE, close_payload(1000, b"x" * 123))
        code, _ = ws.recv_close()
        self.assertEqual(1000, code)
        self.assertTrue(ws.wait_eof())
        self.assert_serving()

    def test_server_initiated_close(self):
        ws = self.connect()
        ws.send_text("close:4001:done here")
        code, reason = ws.recv_close()
        self.assertEqual((4001, b"done here"), (code, reason))
        ws.close(4001)
        self.assertTrue(ws.wait_eof())
        self.wait_stats(lambda s: s["codes"].get("echo") == 4001)

    def test_server_close_without_answer_times_out(self):
        ws = self.connect()
        ws.send_text("close:1000:")
        code, _ = ws.recv_close()
        self.assertEqual(1000, code)
        # No answer: the server waits its close timeout (5 s) and drops.
        t0 = time.monotonic()
        self.assertTrue(ws.wait_eof(10))
        self.assertLess(time.monotonic() - t0, 8)

    def test_data_after_close_is_ignored(self):
        # Autobahn 7.1.3-7.1.5
        ws = self.connect()
        ws.send(frame(OP_CLOSE, close_payload(1000)) + frame(OP_TEXT, b"late")
                + frame(OP_PING, b"late"))
        code, _ = ws.recv_close()
        self.assertEqual(1000, code)
        self.assertTrue(ws.wait_eof())
        self.assert_serving()

    def test_abrupt_disconnect_calls_on_close(self):
        before = self.stats()["closed"]
        ws = self.connect()
        ws.send_text("x")
        ws.recv()
        ws.close_socket()
        self.wait_stats(lambda s: s["closed"] == before + 1 and s["codes"]["echo"] == 1006)


class BadInputTest(WebSocketTestBase):
    app = "ws_app.lua"

    def test_1009_oversize(self):
        # The app's limit is 64 KiB: one byte more fails, in one frame or
        # across fragments (Autobahn 9.x with a smaller limit).
        ws = self.connect()
        ws.send_binary(b"x" * 65536)
        self.assertEqual(OP_BINARY, ws.recv()[0])
        ws.send_binary(b"x" * 65537)
        self.expect_close(ws, 1009)
        ws = self.connect()
        ws.send_frame(OP_TEXT, b"a" * 40000, fin=False)
        ws.send_frame(OP_CONT, b"a" * 30000, fin=True)
        self.expect_close(ws, 1009)
        # A header announcing 2^40 bytes is refused before any of them.
        ws = self.connect()
        ws.send(struct.pack("!BBQ", 0x82, 0xFF, 1 << 40) + b"\x00\x00\x00\x00")
        self.expect_close(ws, 1009)
        self.assert_serving()

    def test_1007_bad_utf8(self):
        # Autobahn 6.x: invalid sequences, whole or split, fail fast.
        for bad in (b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
                    b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\xed\xbf\xbf", b"\xff", b"ok\xe2\x82"):
            ws = self.connect()
            ws.send_text(bad)
            self.expect_close(ws, 1007)
        ws = self.connect()
        ws.send_frame(OP_TEXT, b"\xce\xba\xe1", fin=False)
        ws.send_frame(OP_CONT, b"\xbd\xb9\xed\xa0", fin=False)
        self.expect_close(ws, 1007)  # without waiting for the last fragment
        self.assert_serving()

    def test_1002_protocol_errors(self):
        cases = {
            "unmasked client frame": frame(OP_TEXT, b"hi", masked=False),
            "reserved opcode 3": frame(3, b""),
            "reserved opcode 7": frame(7, b"x"),
            "reserved opcode 11": frame(11, b""),
            "reserved opcode 15": frame(15, b"x"),
            "RSV1 without extension": frame(OP_TEXT, b"x", rsv=4),
            "RSV2": frame(OP_TEXT, b"x", rsv=2),
            "RSV3 on a ping": frame(OP_PING, b"x", rsv=1),
            "fragmented ping": frame(OP_PING, b"x", fin=False),
            "fragmented close": frame(OP_CLOSE, close_payload(1000), fin=False),
            "ping over 125 bytes": frame(OP_PING, b"x" * 126),
            "continuation with nothing to continue": frame(OP_CONT, b"x"),
            "new message inside a fragmented one": frame(OP_TEXT, b"a", fin=False)
                + frame(OP_TEXT, b"b"),
        }
        for name, data in cases.items():
            ws = self.connect()
            ws.send(data)
            try:
                self.expect_close(ws, 1002)
            except AssertionError as e:
                raise AssertionError("%s: %s" % (name, e))
        self.assert_serving()

    def test_errors_after_good_messages(self):
        # Autobahn 4.1.3/4.2.3: the message before the bad frame is still
        # handled (echoed), then the connection fails, and the ping after
        # it is never answered.
        ws = self.connect()
        ws.send(frame(OP_TEXT, b"fine") + frame(5, b"") + frame(OP_PING, b"p"))
        self.assertEqual((OP_TEXT, b"fine"), ws.recv())
        self.expect_close(ws, 1002)
        # The same with the peer's close: the echo comes before the answer.
        ws = self.connect()
        ws.send(frame(OP_TEXT, b"first") + frame(OP_TEXT, b"second")
                + frame(OP_CLOSE, close_payload(1000)))
        self.assertEqual((OP_TEXT, b"first"), ws.recv())
        self.assertEqual((OP_TEXT, b"second"), ws.recv())
        self.assertEqual(1000, ws.recv_close()[0])
        self.assertTrue(ws.wait_eof())
        self.assert_serving()

    def test_handler_error_closes_with_1011(self):
        ws = self.connect("/error")
        ws.send_text("x")
        self.expect_close(ws, 1011)
        self.assertGreaterEqual(self.stats()["errors"], 1)
        self.assertIn("boom", self.server.stderr())
        self.assert_serving()

    def test_garbage_after_handshake(self):
        ws = self.connect()
        ws.send(os.urandom(1) + b"\x00" * 3)
        ws.sock.settimeout(5)
        try:
            ws.recv_close()
        except EOFError:
            pass
        self.assertTrue(ws.wait_eof())
        self.assert_serving()

    def test_client_vanishes_mid_frame(self):
        ws = self.connect()
        ws.send(frame(OP_BINARY, b"x" * 1000)[:500])
        ws.close_socket()
        self.assert_serving()


class PingTimeoutTest(WebSocketTestBase):
    app = "ws_app.lua"

    def test_unanswered_pings_close_with_1011(self):
        ws = self.connect("/pinger")
        t0 = time.monotonic()
        pings = 0
        while True:
            op, payload = ws.recv()
            if op == OP_PING:
                pings += 1
                continue
            self.assertEqual(OP_CLOSE, op)
            self.assertEqual(1011, struct.unpack("!H", payload[:2])[0])
            break
        self.assertGreaterEqual(pings, 1)
        self.assertLess(time.monotonic() - t0, 3)
        ws.close(1011)
        self.assertTrue(ws.wait_eof())
        self.assert_serving()

    def test_answered_pings_keep_it_open(self):
        ws = self.connect("/pinger")
        deadline = time.monotonic() + 1.5
        ws.sock.settimeout(0.3)
        while time.monotonic() < deadline:
            try:
                op, payload = ws.recv()
            except socket.timeout:
                continue
            self.assertEqual(OP_PING, op)
            ws.send_frame(OP_PONG, payload)
        ws.sock.settimeout(5)
        ws.send_text("alive")
        self.assertEqual((OP_TEXT, b"alive"), ws.recv(answer_pings=True))
        self.assertGreaterEqual(self.stats().get("pongs", 0), 4)
        ws.close_socket()


class SlowClientTest(WebSocketTestBase):
    """DESIGN 4.9: a client that never reads while the server writes is
    closed with 1008 once websocket_max_buffer (4 MiB) is unsent."""
    app = "ws_app.lua"

    def test_flood_closes_with_1008(self):
        ws = self.connect("/flood", rcvbuf=16384)
        # Read nothing until the writer gave up.
        s = self.wait_stats(lambda s: "sent" in s["flood"], timeout=20)
        self.assertGreaterEqual(s["flood"]["sent"] * 65536, 4 * 1024 * 1024)
        # What was queued, then the 1008 close, then EOF.
        ws.sock.settimeout(5)
        code, reason = ws.recv_close()
        self.assertEqual(1008, code)
        self.assertTrue(ws.wait_eof())
        self.wait_stats(lambda s: s["flood"].get("code") == 1008)
        # Memory stayed bounded: the server is fine and serves.
        self.assert_serving()


class DeflateTest(WebSocketTestBase):
    app = "ws_deflate_app.lua"

    def test_negotiated_and_round_trips(self):
        # Autobahn 12.1.x-style: messages of several sizes, context kept.
        ws = self.connect(extensions="permessage-deflate; client_max_window_bits")
        self.assertEqual("permessage-deflate", ws.header("Sec-WebSocket-Extensions"))
        ws.use_deflate()
        for data in (b"Hello", b"Hello", b"", b"a" * 100000, json.dumps({"k": list(range(500))}).encode()):
            ws.send_compressed(data)
            fin, rsv, op, payload = ws.recv_frame()
            self.assertTrue(rsv & RSV1, "the reply is compressed")
            self.assertEqual(OP_TEXT, op)
            got = ws.inflater.decompress(payload + b"\x00\x00\xff\xff")
            self.assertEqual(data, got)
        # Uncompressed messages are fine on a compressed connection.
        ws.send_binary(b"plain")
        op, data = ws.recv()
        self.assertEqual((OP_BINARY, b"plain"), (op, data))
        ws.close()
        self.assertEqual(1000, ws.recv_close()[0])
        ws.close_socket()

    def test_no_context_takeover(self):
        ws = self.connect(extensions="permessage-deflate; server_no_context_takeover; "
                                     "client_no_context_takeover")
        ext = ws.header("Sec-WebSocket-Extensions")
        self.assertIn("server_no_context_takeover", ext)
        self.assertIn("client_no_context_takeover", ext)
        ws.use_deflate(no_context_takeover=True)
        for i in range(3):
            ws.deflater = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
            ws.send_compressed(b"same message")
            self.assertEqual((OP_TEXT, b"same message"), ws.recv())
        ws.close_socket()

    def test_window_bits(self):
        ws = self.connect(extensions="permessage-deflate; server_max_window_bits=10; "
                                     "client_max_window_bits=12")
        ext = ws.header("Sec-WebSocket-Extensions")
        self.assertIn("server_max_window_bits=10", ext)
        ws.use_deflate()
        ws.inflater = zlib.decompressobj(-10)  # the server must keep to 10 bits
        data = os.urandom(3000) * 4
        ws.send_compressed(data, OP_BINARY)
        self.assertEqual((OP_BINARY, data), ws.recv())
        ws.close_socket()

    def test_unacceptable_offer_means_no_compression(self):
        ws = self.connect(extensions="permessage-deflate; server_max_window_bits=8, x-webkit-deflate-frame")
        self.assertIsNone(ws.header("Sec-WebSocket-Extensions"))
        ws.send_text("x")
        fin, rsv, op, payload = ws.recv_frame()
        self.assertEqual((0, OP_TEXT, b"x"), (rsv, op, payload))
        ws.close_socket()

    def test_compression_errors(self):
        ws = self.connect(extensions="permessage-deflate")
        ws.send_frame(OP_TEXT, b"\xff\xff\xff\xff", rsv=RSV1)
        self.expect_close(ws, 1007)
        # RSV1 on a continuation frame (Autobahn 12/13 expect it only first).
        ws = self.connect(extensions="permessage-deflate")
        ws.send_frame(OP_TEXT, b"", fin=False, rsv=RSV1)
        ws.send_frame(OP_CONT, b"\x00", fin=True, rsv=RSV1)
        self.expect_close(ws, 1002)
        # A zip bomb: 11 MB of zeros in a few KB passes the 10 MiB limit.
        ws = self.connect(extensions="permessage-deflate")
        ws.use_deflate()
        ws.send_compressed(b"\x00" * (11 * 1024 * 1024), OP_BINARY)
        self.expect_close(ws, 1009)
        self.assert_serving()

    def test_64bit_length_echo(self):
        # Autobahn 9.1.x-ish: a message past 64 KiB needs a 64-bit length.
        ws = self.connect()
        data = bytes(range(256)) * 400
        ws.send_binary(data)
        self.assertEqual((OP_BINARY, data), ws.recv())
        ws.close_socket()


class MetricsTest(WebSocketTestBase):
    app = "ws_app.lua"
    args = ("--metrics", "/metrics")

    def gauge(self):
        _, body = fetch(self.port, "/metrics")
        m = re.search(rb"^gust_websocket_connections_open (\d+)", body, re.M)
        return int(m.group(1))

    def test_open_connections_gauge(self):
        base = self.gauge()
        a, b = self.connect(), self.connect()
        self.assertEqual(base + 2, self.gauge())
        a.close()
        a.recv_close()
        self.assertTrue(a.wait_eof())
        b.close_socket()
        deadline = time.monotonic() + 5
        while self.gauge() != base and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(base, self.gauge())


class ReaderAnchorTest(WebSocketTestBase):
    """A connection's reader task is anchored while it waits; closing many
    connections at once (with collections running meanwhile) must let
    every one of them go."""
    app = "ws_app.lua"

    def threads(self):
        return int(fetch(self.port, "/threads")[1])

    def test_readers_are_released_when_many_close_at_once(self):
        base = self.threads()
        closed = self.stats()["closed"]
        for _ in range(20):
            conns = [self.connect("/churn") for _ in range(30)]
            for ws in conns:
                ws.send_text("x")
            for ws in conns:
                self.assertEqual((OP_TEXT, b"x"), ws.recv())
            for ws in conns:
                ws.close_socket()
            closed += 30
            self.wait_stats(lambda s, n=closed: s["closed"] >= n)
        # 600 connections went; a leak keeps hundreds of their readers.
        self.assertLessEqual(self.threads(), base + 5)


class TLSEchoServer(threading.Thread):
    """A minimal wss:// echo server (Python ssl), for gust's client."""

    def __init__(self, cert, key):
        super().__init__(daemon=True)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.port = self.lsock.getsockname()[1]
        self.paths = []

    def run(self):
        while True:
            try:
                raw, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(raw,), daemon=True).start()

    def serve(self, raw):
        try:
            s = self.ctx.wrap_socket(raw, server_side=True)
            buf = b""
            while b"\r\n\r\n" not in buf:
                data = s.recv(4096)
                if not data:
                    return
                buf += data
            head = buf.split(b"\r\n\r\n")[0].decode()
            self.paths.append(head.split()[1])
            key = re.search(r"(?im)^sec-websocket-key:\s*(\S+)", head).group(1)
            s.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
                       % accept_for(key)).encode())
            rest = b""
            while True:
                while len(rest) < 2:
                    rest += s.recv(65536)
                n = rest[1] & 0x7F
                off = 2 + {126: 2, 127: 8}.get(n, 0)
                while len(rest) < off + 4:
                    rest += s.recv(65536)
                if n == 126:
                    n = struct.unpack("!H", rest[2:4])[0]
                elif n == 127:
                    n = struct.unpack("!Q", rest[2:10])[0]
                assert rest[1] & 0x80, "client frames are masked"
                while len(rest) < off + 4 + n:
                    rest += s.recv(65536)
                op = rest[0] & 0x0F
                payload = mask(rest[off + 4:off + 4 + n], rest[off:off + 4])
                rest = rest[off + 4 + n:]
                s.sendall(frame(op, payload, masked=False))
                if op == OP_CLOSE:
                    s.close()
                    return
        except Exception:  # noqa -- the client's test reports what went wrong
            return

    def stop(self):
        self.lsock.close()


class ClientTest(GustTestCase):
    """gust's client (websocket.connect) over ws:// and wss://."""
    app = "ws_client.lua"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dir = tempfile.mkdtemp(prefix="gust-wss-")
        cls.cert = os.path.join(cls.dir, "cert.pem")
        cls.key = key = os.path.join(cls.dir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", key, "-out", cls.cert, "-days", "1", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=60)
        cls.tls = TLSEchoServer(cls.cert, key)
        cls.tls.start()
        cls.echo = Server("ws_app.lua")

    @classmethod
    def tearDownClass(cls):
        cls.tls.stop()
        cls.echo.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)
        super().tearDownClass()

    def run_client(self, **args):
        status, body = fetch(self.port, "/run?" + urllib.parse.urlencode(args))
        self.assertEqual(200, status, body)
        return json.loads(body)

    def test_ws_to_gust(self):
        r = self.run_client(url="ws://127.0.0.1:%d/echo?x=1" % self.echo.port, msg="über")
        self.assertEqual({"reply": "über", "close_code": 1000}, r)

    def test_wss_verified(self):
        r = self.run_client(url="wss://localhost:%d/secure?q=1" % self.tls.port, ca=self.cert,
                            msg="over tls")
        self.assertEqual({"reply": "over tls", "close_code": 1000}, r)
        self.assertIn("/secure?q=1", self.tls.paths)

    def test_wss_unverified_certificate_is_refused(self):
        r = self.run_client(url="wss://localhost:%d/" % self.tls.port)
        self.assertIn("certificate verify failed", r["err"])
        r = self.run_client(url="wss://localhost:%d/" % self.tls.port, verify="0", msg="x")
        self.assertEqual("x", r["reply"])

    def test_wss_to_gust_over_tls(self):
        tls = Server("ws_app.lua", "--tls-cert", self.cert, "--tls-key", self.key)
        try:
            r = self.run_client(url="wss://localhost:%d/echo" % tls.port, ca=self.cert,
                                msg="both ends gust")
            self.assertEqual({"reply": "both ends gust", "close_code": 1000}, r)
            # And a raw client, with a frame in the handshake's packet.
            ctx = ssl.create_default_context(cafile=self.cert)
            ws = RawWS(tls.port, "/echo", tls=ctx, extra=frame(OP_TEXT, b"early"))
            self.assertEqual(101, ws.status)
            self.assertEqual((OP_TEXT, b"early"), ws.recv())
            ws.send_binary(os.urandom(60000))  # under the app's 64 KiB limit
            self.assertEqual(OP_BINARY, ws.recv()[0])
            ws.close(1000)
            self.assertEqual(1000, ws.recv_close()[0])
            self.assertTrue(ws.wait_eof())
        finally:
            tls.stop()

    def test_refused_and_failed_handshakes(self):
        r = self.run_client(url="ws://127.0.0.1:1/")
        self.assertEqual("connection refused", r["err"])
        r = self.run_client(url="ws://127.0.0.1:%d/nowhere" % self.echo.port)
        self.assertIn("handshake failed: HTTP 404", r["err"])
        r = self.run_client(url="ws://127.0.0.1:%d/stats" % self.echo.port)
        self.assertIn("handshake failed: HTTP 200", r["err"])


class ChatSocketTest(unittest.TestCase):
    """apps/chat: /chatsocket broadcasts to every socket, and long polling
    and sockets see each other's messages."""

    def setUp(self):
        self.server = Server(CHAT)
        self.port = self.server.port

    def tearDown(self):
        self.server.stop()

    def post(self, path, fields):
        return fetch(self.port, path, "POST", urllib.parse.urlencode(fields),
                     {"Content-Type": "application/x-www-form-urlencoded"})

    def test_broadcast_to_every_socket_and_to_pollers(self):
        a = RawWS(self.port, "/chatsocket")
        b = RawWS(self.port, "/chatsocket")
        self.assertEqual((101, 101), (a.status, b.status))
        for ws in (a, b):
            op, data = ws.recv()
            self.assertEqual(OP_TEXT, op)
            self.assertEqual([], json.loads(data)["messages"])  # the backlog
        a.send_text(json.dumps({"body": "hi <b>"}))
        for ws in (a, b):
            msgs = json.loads(ws.recv()[1])["messages"]
            self.assertEqual(["hi <b>"], [m["body"] for m in msgs])
            self.assertIn("hi &lt;b&gt;", msgs[0]["html"])
        first = msgs[0]["id"]
        # A message posted the long-polling way reaches the sockets too.
        status, body = self.post("/a/message/new", {"body": "from a form"})
        self.assertEqual(200, status)
        for ws in (a, b):
            msgs = json.loads(ws.recv()[1])["messages"]
            self.assertEqual(["from a form"], [m["body"] for m in msgs])
        # And a poller with the first id as cursor sees only the second.
        status, body = self.post("/a/message/updates", {"cursor": first})
        self.assertEqual(["from a form"], [m["body"] for m in json.loads(body)["messages"]])
        # A late joiner gets the backlog.
        c = RawWS(self.port, "/chatsocket")
        msgs = json.loads(c.recv()[1])["messages"]
        self.assertEqual(["hi <b>", "from a form"], [m["body"] for m in msgs])
        for ws in (a, b, c):
            ws.close()
            self.assertEqual(1000, ws.recv_close()[0])
            ws.close_socket()
        status, body = fetch(self.port, "/a/stats")
        self.assertEqual(200, status)


if __name__ == "__main__":
    unittest.main()


class DrainTest(unittest.TestCase):
    """DESIGN §2: a graceful stop lets WebSockets run until --drain-timeout,
    then sends them close 1001 and exits 0; with none open it exits at once."""

    def test_stop_sends_1001_after_the_drain_timeout(self):
        s = Server("ws_app.lua", "--drain-timeout", "1")
        ws = RawWS(s.port, "/echo")
        self.assertEqual(101, ws.status)
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        ws.send_text("still served while draining")
        self.assertEqual("still served while draining", ws.recv()[1].decode())
        code, _ = ws.recv_close()
        elapsed = time.monotonic() - t0
        self.assertEqual(1001, code)
        self.assertGreaterEqual(elapsed, 0.8)
        self.assertLess(elapsed, 4)
        ws.close()
        ws.close_socket()
        self.assertEqual(0, s.stop())

    def test_stop_is_quick_once_the_sockets_are_gone(self):
        s = Server("ws_app.lua", "--drain-timeout", "10")
        ws = RawWS(s.port, "/echo")
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        ws.close()
        ws.recv_close()
        ws.close_socket()
        t0 = time.monotonic()
        s.proc.wait(5)
        self.assertLess(time.monotonic() - t0, 2)
        self.assertEqual(0, s.stop())

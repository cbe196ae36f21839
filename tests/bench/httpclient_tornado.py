"""Tornado's side of tests/bench/httpclient.sh (python3-tornado from Debian):
    python3 httpclient_tornado.py URL N CONCURRENCY
fetches URL N times with tornado.httpclient.AsyncHTTPClient (the default
simple_httpclient), CONCURRENCY at a time, and prints
"requests=N ok=N failed=N seconds=S"."""
import sys
import time

from tornado.httpclient import AsyncHTTPClient
from tornado.ioloop import IOLoop


async def main(url, n, conc):
    client = AsyncHTTPClient(max_clients=conc)
    await client.fetch(url)  # warm-up
    ok = failed = 0

    async def worker(count):
        nonlocal ok, failed
        for _ in range(count):
            try:
                r = await client.fetch(url, raise_error=False)
                if r.code == 200:
                    ok += 1
                else:
                    failed += 1
            except Exception:
                failed += 1

    per, rest = divmod(n, conc)
    t0 = time.monotonic()
    from tornado import gen
    await gen.multi([worker(per + (1 if i < rest else 0)) for i in range(conc)])
    secs = time.monotonic() - t0
    print("requests=%d ok=%d failed=%d seconds=%.4f" % (n, ok, failed, secs))


if __name__ == "__main__":
    IOLoop.current().run_sync(lambda: main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))

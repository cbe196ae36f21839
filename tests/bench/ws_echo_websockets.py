"""The same echo on Python's `websockets` (Debian python3-websockets, asyncio),
for tests/bench/websocket.sh: python3 ws_echo_websockets.py PORT [deflate]"""
import asyncio
import sys

import websockets


async def echo(ws, path=None):
    async for message in ws:
        await ws.send(message)


async def main(port, deflate):
    async with websockets.serve(echo, "127.0.0.1", port, max_size=None, ping_interval=None,
                                compression="deflate" if deflate else None):
        print("ready", flush=True)
        await asyncio.Future()


asyncio.run(main(int(sys.argv[1]), len(sys.argv) > 2 and sys.argv[2] == "deflate"))

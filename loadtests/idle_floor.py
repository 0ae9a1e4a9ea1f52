"""The floor under any uvloop server's idle connections: RSS per connection of a server whose
protocol keeps nothing but its transport.

    python loadtests/idle_floor.py [--connections 5000]

A child process opens the connections (raw TCP, 100 bytes sent on each, then idle); this
process serves them with a one-slot `asyncio.Protocol` on uvloop and prints its RSS growth
per connection. collab's idle connections cost this plus their own state (RESULTS.md, "Rooms
under pressure, second pass").
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import sys

import uvloop

CLIENTS = """
import resource, socket, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held = []
for _ in range(int(sys.argv[1])):
    connection = socket.create_connection(("127.0.0.1", int(sys.argv[2])))
    connection.send(b"x" * 100)
    held.append(connection)
print("ready", flush=True)
time.sleep(600)
"""


class HoldOnly(asyncio.Protocol):
    __slots__ = ("transport",)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        pass


def rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


async def measure(connections: int) -> float:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < connections + 100:
        sys.exit(f"idle_floor.py: the open-files limit ({hard}) is below {connections + 100}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    server = await asyncio.get_running_loop().create_server(HoldOnly, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    gc.collect()
    before = rss_kib()
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENTS, str(connections), str(port), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        await asyncio.wait_for(child.stdout.readline(), 300)
        await asyncio.sleep(2)  # the last connections' first reads
        gc.collect()
        return (rss_kib() - before) / connections
    finally:
        child.kill()
        await child.wait()
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=5000)
    args = parser.parse_args()
    per_connection = uvloop.run(measure(args.connections))
    print(
        f"{args.connections} idle connections: {per_connection:.2f} KiB of RSS each "
        "(uvloop transport and a one-slot protocol)"
    )


if __name__ == "__main__":
    main()

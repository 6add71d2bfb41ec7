"""A transparent TCP proxy that delays every chunk by a fixed time, in order, both ways.

Run inside a container's network namespace by :mod:`tests.support.netfault`
(``nsenter -t PID -n python -m tests.support.delay_proxy --port P --delay S --mark M``):
connections that ``iptables -t nat ... REDIRECT`` sent to ``--port`` are connected on to
their original destination (``SO_ORIGINAL_DST``) from a socket marked ``--mark``, which
the rules let through unredirected. Each chunk read from one side is written to the
other ``--delay`` seconds after it was read; chunks keep their order, and a side's end
of stream is passed on after the chunks before it. Stops on SIGTERM.

A connection made straight to ``--port`` (not redirected: a readiness probe, say) has
the proxy's own port as its original destination; it is closed at once. Forwarding it
would connect the proxy to itself, and each such hop makes another: the first cluster
runs grew 20,000 self-connections per proxy within seconds (its open-file limit), after
which the proxy starved the very links it was meant to delay.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import struct

SO_ORIGINAL_DST = 80


def original_destination(sock: socket.socket) -> tuple[str, int]:
    """Where a REDIRECTed connection was going (IPv4)."""
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port = struct.unpack("!H", raw[2:4])[0]
    return socket.inet_ntoa(raw[4:8]), port


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy ``reader`` to ``writer``, each chunk ``delay`` seconds after it arrived."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def read() -> None:
        while True:
            chunk = await reader.read(65536)
            await queue.put((loop.time() + delay, chunk))
            if not chunk:
                return

    async def write() -> None:
        while True:
            due, chunk = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not chunk:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(chunk)
            await writer.drain()

    try:
        await asyncio.gather(read(), write())
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def _serve(port: int, delay: float, mark: int) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        sock: socket.socket = client_w.get_extra_info("socket")
        try:
            host, dport = original_destination(sock)
            if dport == port:  # not redirected: see the module docstring
                client_w.close()
                return
            up = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            up.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
            up.setblocking(False)
            await asyncio.get_running_loop().sock_connect(up, (host, dport))
            server_r, server_w = await asyncio.open_connection(sock=up)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_pipe(client_r, server_w, delay), _pipe(server_r, client_w, delay))

    server = await asyncio.start_server(handle, "0.0.0.0", port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="port the rules redirect to")
    parser.add_argument("--delay", type=float, required=True, help="seconds added each way")
    parser.add_argument("--mark", type=int, required=True, help="fwmark of onward sockets")
    args = parser.parse_args()
    asyncio.run(_serve(args.port, args.delay, args.mark))


if __name__ == "__main__":
    main()

"""A minimal VNC (RFB 3.8) viewer for the desktop bench: handshake, raw updates, keys.

Just what `bench/desktops.py` needs to behave like a browser's noVNC: ask for updates
as fast as they come, count the bytes, and time a key's echo. Over a TCP socket (the
desktop directly) or a binary WebSocket (through the gateway's relay).
"""

from __future__ import annotations

import asyncio
import struct
import time
from typing import Protocol

import websockets
from websockets.typing import Subprotocol


class Transport(Protocol):
    async def read(self, n: int) -> bytes: ...
    async def write(self, data: bytes) -> None: ...
    async def close(self) -> None: ...


class Tcp:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Tcp:
        return cls(*await asyncio.open_connection(host, port))

    async def read(self, n: int) -> bytes:
        return await self.reader.readexactly(n)

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()


class Ws:
    """A binary WebSocket as a byte stream (messages carry arbitrary slices of it)."""

    def __init__(self, socket: websockets.ClientConnection) -> None:
        self.socket = socket
        self.buffer = bytearray()

    @classmethod
    async def open(cls, url: str) -> Ws:
        socket = await websockets.connect(
            url,
            subprotocols=[Subprotocol("binary")],
            max_size=None,
            open_timeout=60,
            ping_interval=None,  # a loaded bench client answers late; not a failure
        )
        return cls(socket)

    async def read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            message = await self.socket.recv()
            self.buffer += message if isinstance(message, bytes) else message.encode()
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out

    async def write(self, data: bytes) -> None:
        await self.socket.send(data)

    async def close(self) -> None:
        await self.socket.close()


class Viewer:
    def __init__(self, transport: Transport) -> None:
        self.t = transport
        self.width = self.height = 0
        self.bpp = 4
        self.received = 0  # bytes of framebuffer updates

    async def handshake(self) -> None:
        version = await self.t.read(12)
        if not version.startswith(b"RFB "):
            raise ConnectionError(f"not an RFB server: {version!r}")
        await self.t.write(b"RFB 003.008\n")
        count = (await self.t.read(1))[0]
        types = await self.t.read(count)
        if 1 not in types:
            raise ConnectionError(f"no 'None' security offered: {list(types)}")
        await self.t.write(b"\x01")
        if struct.unpack(">I", await self.t.read(4))[0] != 0:
            raise ConnectionError("security handshake failed")
        await self.t.write(b"\x01")  # shared
        self.width, self.height = struct.unpack(">HH", await self.t.read(4))
        pixel_format = await self.t.read(16)
        self.bpp = pixel_format[0] // 8
        (name_length,) = struct.unpack(">I", await self.t.read(4))
        await self.t.read(name_length)
        await self.t.write(struct.pack(">BBHi", 2, 0, 1, 0))  # SetEncodings: raw

    async def request(self, incremental: bool = True) -> None:
        await self.t.write(
            struct.pack(">BBHHHH", 3, int(incremental), 0, 0, self.width, self.height)
        )

    async def next_update(self) -> int:
        """Read server messages until a framebuffer update; its rectangles' count."""
        while True:
            kind = (await self.t.read(1))[0]
            if kind == 0:
                _, rects = struct.unpack(">BH", await self.t.read(3))
                for _ in range(rects):
                    _, _, w, h, encoding = struct.unpack(">HHHHi", await self.t.read(12))
                    size = w * h * self.bpp if encoding == 0 else 4 if encoding == 1 else 0
                    if size:
                        await self.t.read(size)
                    self.received += 12 + size
                return int(rects)
            if kind == 2:  # bell
                continue
            if kind == 3:  # server cut text
                (length,) = struct.unpack(">3xI", await self.t.read(7))
                await self.t.read(length)
                continue
            raise ConnectionError(f"unexpected server message {kind}")

    async def key(self, keysym: int) -> None:
        await self.t.write(
            struct.pack(">BBxxI", 4, 1, keysym) + struct.pack(">BBxxI", 4, 0, keysym)
        )

    async def keystroke_rtt(self, keysym: int, settle_s: float = 0.1) -> float:
        """Seconds from a key to the first update after it (on a quiet screen: its echo).
        Updates already on their way (another viewer's keys, the rest of an earlier echo)
        are read and dropped first, so the update timed is this key's own."""
        await self._drain(settle_s)
        await self.request()
        started = time.perf_counter()
        await self.key(keysym)
        await self.next_update()
        return time.perf_counter() - started

    async def _drain(self, quiet_s: float) -> None:
        """Read updates until none comes for `quiet_s` (a request stays outstanding)."""
        while True:
            try:
                await asyncio.wait_for(self.next_update(), quiet_s)
            except TimeoutError:
                return
            await self.request()

    async def watch(self, until: float) -> None:
        """Ask for every change, as a browser does, until `until` (monotonic)."""
        await self.request(incremental=False)
        while time.monotonic() < until:
            await self.next_update()
            await self.request()

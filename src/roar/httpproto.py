"""uvicorn's httptools protocol, sending each answer in one system call.

uvicorn writes an answer's status line and headers, then its body, with two ``transport.write``
calls; uvloop sends each at once: two system calls and two TCP segments per answer. Measured
with py-spy on the hot GETs (docs/benchmarks.md) those two sends were most of a request's cost.
Here the writes made during one turn of the event loop are joined and sent together at the end
of that turn; the answer leaves as soon as before, in one piece.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["OneWriteHttpToolsProtocol"]


class _JoiningTransport:
    """A transport whose writes within one loop turn go out as one write; everything else is
    the wrapped transport's own."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pending = self._pending
        if pending is None:
            self._pending = [bytes(data)]
            self._loop.call_soon(self._flush)
        else:
            pending.append(bytes(data))

    def _flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._flush()  # what was written before the close is sent before the FIN
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's ``httptools`` protocol over a ``_JoiningTransport``."""

    # uvicorn's own override narrows asyncio's BaseTransport to Transport, and ignores the same.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        joined: Any = _JoiningTransport(transport, self.loop)
        super().connection_made(joined)

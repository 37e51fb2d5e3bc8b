"""A TCP relay on 127.0.0.1 that can fall silent on the connections it already carries, as a
server's address does when its pod is deleted and replaced (no FIN, no RST: packets go nowhere),
while new connections reach the server again.

    with TcpProxy(("127.0.0.1", 3306)) as proxy:
        ...  # clients connect to 127.0.0.1:proxy.port
        proxy.silence_existing()
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType

__all__ = ["TcpProxy"]


class _Pair:
    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client, self.upstream = client, upstream
        self.silent = False

    def relay(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if not self.silent:  # silent: what is sent is swallowed, nothing comes back
                    dst.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        for s in (self.client, self.upstream):
            s.close()


class TcpProxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._pairs: list[_Pair] = []
        self._lock = threading.Lock()
        self._closed = False

    def __enter__(self) -> TcpProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            for pair in self._pairs:
                pair.close()

    def silence_existing(self) -> int:
        """Every connection carried so far stops relaying; returns how many."""
        with self._lock:
            for pair in self._pairs:
                pair.silent = True
            return len(self._pairs)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                continue
            upstream.settimeout(None)
            pair = _Pair(client, upstream)
            with self._lock:
                self._pairs.append(pair)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=pair.relay, args=(src, dst), daemon=True).start()

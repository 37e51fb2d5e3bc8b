"""A git server on loopback: Debian git's own `git http-backend` (the smart HTTP protocol, clone
and push) behind a small WSGI-to-CGI wrapper, on 127.0.0.1 and a free port.

    with git_server(tmp_path / "git") as server:
        server.create("roar.git")
        subprocess.run(["git", "push", server.url("roar.git"), "main"], check=True)

Every repository under the root is served (GIT_HTTP_EXPORT_ALL) and accepts pushes without
authentication (`http.receivepack`): a test server, bound to loopback only.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

__all__ = ["GitServer", "git_server"]

#: The CGI variables git http-backend reads, taken from the WSGI environ as they are.
CGI_VARIABLES = ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE", "REMOTE_ADDR",
                 "HTTP_CONTENT_ENCODING", "HTTP_GIT_PROTOCOL", "SERVER_PROTOCOL")  # fmt: skip
TIMEOUT = 120  # seconds for one request (a clone or a push of a small repository)


def _body(environ: dict[str, Any]) -> bytes:
    stream = environ["wsgi.input"]
    if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
        # git sends large pushes chunked (over http.postBuffer); wsgiref does not decode them.
        chunks = []
        while size := int(stream.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(stream.read(size))
            stream.readline()  # the CRLF after each chunk
        while stream.readline().strip():  # trailers, up to the empty line
            pass
        return b"".join(chunks)
    return bytes(stream.read(int(environ.get("CONTENT_LENGTH") or 0)))


def _cgi_response(output: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
    """(status, headers, body) of a CGI program's output: headers up to the first empty line."""
    ends = [(at, len(sep)) for sep in (b"\r\n\r\n", b"\n\n") if (at := output.find(sep)) >= 0]
    end, width = min(ends) if ends else (len(output), 0)
    status, headers = "200 OK", []
    for line in output[:end].decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = value.strip()
        elif name:
            headers.append((name, value.strip()))
    return status, headers, output[end + width :]


class _App:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.log: list[str] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        body = _body(environ)
        env = {k: str(environ[k]) for k in CGI_VARIABLES if environ.get(k)}
        env |= {"GIT_PROJECT_ROOT": str(self.root), "GIT_HTTP_EXPORT_ALL": "1",
                "CONTENT_LENGTH": str(len(body)), "GATEWAY_INTERFACE": "CGI/1.1",
                "PATH": "/usr/bin:/bin"}  # fmt: skip
        result = subprocess.run(["git", "http-backend"], input=body, env=env,
                                capture_output=True, timeout=TIMEOUT)  # fmt: skip
        status, headers, payload = _cgi_response(result.stdout)
        line = f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO')} -> {status}"
        if result.returncode or result.stderr:
            line += f" (exit {result.returncode}) {result.stderr.decode(errors='replace')}"
        self.log.append(line)
        start_response(status, headers)
        return [payload]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # the app keeps its own log
        pass


class GitServer:
    """The running server: its repositories live under ``root``."""

    def __init__(self, root: Path, port: int, app: _App) -> None:
        self.root, self.port, self._app = root, port, app

    def url(self, repository: str) -> str:
        return f"http://127.0.0.1:{self.port}/{repository}"

    def create(self, repository: str, branch: str = "main") -> Path:
        """A new bare repository that accepts pushes over HTTP."""
        path = self.root / repository
        subprocess.run(["git", "init", "--quiet", "--bare", f"--initial-branch={branch}",
                        str(path)], check=True, timeout=30)  # fmt: skip
        subprocess.run(["git", "-C", str(path), "config", "http.receivepack", "true"],
                       check=True, timeout=30)  # fmt: skip
        return path

    @property
    def requests(self) -> list[str]:
        """One line per request served (method, path, status, and git's errors if any)."""
        return list(self._app.log)


@contextmanager
def git_server(root: Path) -> Iterator[GitServer]:
    """A git server for the repositories under ``root``, on 127.0.0.1 and a free port."""
    root.mkdir(parents=True, exist_ok=True)
    app = _App(root)
    httpd = make_server("127.0.0.1", 0, app, server_class=_ThreadingServer,
                        handler_class=_QuietHandler)  # fmt: skip
    thread = threading.Thread(target=httpd.serve_forever, name="git-server", daemon=True)
    thread.start()
    try:
        yield GitServer(root, httpd.server_address[1], app)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)

"""One pure-ASGI middleware for every request: request id, version header, body limit, metrics,
access log (sampled or off per setting; probes and metrics left out by default; errors always).

Pure ASGI (not BaseHTTPMiddleware) because it sits on the hot path of every request. Metrics and
the access log are written by roar.api.record.Recorder, shared with roar.api.fastpath."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from roar import metrics
from roar.api.problems import BodyTooLarge, problem
from roar.api.record import PROBE_PATHS, Recorder

__all__ = ["PROBE_PATHS", "RequestMiddleware"]

log = logging.getLogger("roar.api")


class RequestMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        version: str,
        access_log: bool = True,
        access_log_sample: float = 1.0,
        access_log_probes: bool = False,
        recorder: Recorder | None = None,
    ) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.recorder = recorder or Recorder(
            access_log=access_log, sample=access_log_sample, probes=access_log_probes
        )
        # Every answer says which status version served it (``X-Roar-Version``), so a load run
        # or a mesh lab can count versions on any route. Encoded once, here.
        self.version_header = (b"x-roar-version", version.encode("latin-1"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex
        status = 500
        started_answer = False
        version_header = self.version_header

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_answer
            if message["type"] == "http.response.start":
                status = message["status"]
                started_answer = True
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"x-request-id", request_id.encode("latin-1")),
                    version_header,
                ]
            await send(message)

        received = 0
        too_large = replaced = False

        async def receive_capped() -> Message:
            nonlocal received, too_large
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body:
                too_large = True
                raise BodyTooLarge(f"The request body is over the limit of {self.max_body} bytes")
            return message

        async def send_app_answer(message: Message) -> None:
            # FastAPI turns any error while reading a body into its own 400; a body cut off at
            # the limit is answered 413 here instead, in the route's error format.
            nonlocal replaced
            if replaced:
                return  # the rest of the app's own answer
            if not too_large or started_answer:
                await send_with_id(message)
            elif message["type"] == "http.response.start":
                replaced = True
                await _reject_too_large(scope, receive, send_with_id, self.max_body)

        metrics.IN_FLIGHT.inc()
        try:
            length = headers.get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body:
                await _reject_too_large(scope, receive, send_with_id, self.max_body)
            else:
                await self.app(scope, receive_capped, send_app_answer)
        except Exception:
            if started_answer:
                raise
            # Answered here rather than by Starlette's outermost error middleware, so that this
            # 500 too carries the request id and the version, and is counted as a 500.
            log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            answer = problem(Request(scope), 500, "Internal error; the server log has the details")
            await answer(scope, receive, send_with_id)
        finally:
            metrics.IN_FLIGHT.dec()
            route: Any = scope.get("route")
            self.recorder.done(
                method=scope["method"],
                # The route template, never the raw path: label values must stay few.
                route=getattr(route, "path", None) or "<unmatched>",
                path=scope["path"],
                status=status,
                started=started,
                request_id=request_id,
            )


async def _reject_too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    """413 before reading a body whose Content-Length is over the limit: problem+json on /api,
    plain text on the legacy routes (as every other error); the connection is closed because
    the body is left unread."""
    detail = f"The request body is over the limit of {limit} bytes"
    answer = problem(Request(scope), 413, detail, headers={"connection": "close"})
    await answer(scope, receive, send)

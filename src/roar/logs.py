"""Logging: one JSON object per line in production, readable lines in development.

An access-log line per request is the hot GETs' largest cost after the network (docs/
benchmarks.md), so the lines written inside the event loop are collected and leave in one write
once the loop has handled what was ready (under load, the answers of many requests); a warning or
an error writes them all at once, in order.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from typing import Any, TextIO

import orjson

__all__ = ["access_logger", "configure_logging", "flush_logs"]

access_logger = logging.getLogger("roar.access")

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is logged too.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # strftime once a second, not once a line
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        entry: dict[str, Any] = {
            "ts": f"{self._stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = super().format(record)
        return f"{line} {extras}" if extras else line


#: Lines buffered at most: the one that reaches it writes them all.
_MAX_LINES = 512


class BufferedStreamHandler(logging.StreamHandler[TextIO]):
    """A StreamHandler that, inside a running event loop, collects lines and writes them in one
    call from a callback queued behind what the loop has ready (so before it waits for more), or
    at once for a record at WARNING or above (after the lines before it). Outside an event loop
    (start-up, the CLI) it writes each line as it comes. A client has its answer a moment before
    its line is written; a kill -9 takes the lines of that moment with it."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._lines: list[str] = []
        # The loop with a flush queued (a closed loop never runs it: a new loop queues its own).
        self._flush_loop: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self._lines.append(line)
        if record.levelno >= logging.WARNING or len(self._lines) >= _MAX_LINES:
            self.flush()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if self._flush_loop is not loop:
            self._flush_loop = loop
            loop.call_soon(self._queued_flush)

    def _queued_flush(self) -> None:
        self._flush_loop = None
        self.flush()

    def flush(self) -> None:
        self.acquire()
        try:
            if self._lines:
                lines, self._lines = self._lines, []
                try:
                    self.stream.write("\n".join(lines) + "\n")
                except Exception:  # as StreamHandler.emit: report, never raise into the caller
                    self.handleError(logging.makeLogRecord({"msg": lines[0]}))
            super().flush()
        finally:
            self.release()


def flush_logs() -> None:
    """Write every buffered line now (before a fork, and when a worker process ends: forked
    processes leave with os._exit, which skips logging's own flush at exit)."""
    for handler in logging.getLogger().handlers:
        handler.flush()


def configure_logging(*, fmt: str = "text", level: str = "INFO") -> None:
    """Route ROAR's and uvicorn's logs to stderr in one format."""
    # What no line of ours shows, logging need not look up for each record (the logging
    # HOWTO's "Optimization" section): the caller's frame, thread, process and process name.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = BufferedStreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("alembic").setLevel(max(root.level, logging.WARNING))
    # ROAR writes its own access log with the route template and request id.
    logging.getLogger("uvicorn.access").disabled = True


# A child forked with lines still in the buffer would write them a second time.
os.register_at_fork(before=flush_logs)

"""``roar load URL``: send requests with bounded concurrency and count what comes back.

It replaces the workshop's ``while true; do curl ...; done`` loop (lab 8, the mesh's traffic
split): which versions answered (``X-Roar-Version``, else the legacy version page's body), with
which statuses, how many failed (5xx, connection errors, timeouts) and how slow they were. It is
a counting client, not a benchmark engine: one httpx client (already a dependency) with at most
``--concurrency`` requests in flight. For throughput numbers use wrk, k6 or locust.

Exit codes: 0 when the share of failed requests is at most ``--max-error-rate``, 1 above it or
when the target does not answer at all, 2 for bad usage.
"""

from __future__ import annotations

import asyncio
import errno
import json
import math
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # imported when the command runs: `roar serve` need not load an HTTP client
    import httpx

__all__ = [
    "Outcome",
    "Plan",
    "error_kind",
    "load",
    "parse_header",
    "percentile",
    "render_table",
    "run",
    "summarize",
    "version_of",
]

VERSION_HEADER = "x-roar-version"
#: The legacy /roar/api/v1/status/version body: ``<p>Version</p>00.01.00``.
_LEGACY_VERSION = re.compile(rb"\s*<p>Version</p>\s*([^\s<]{1,64})")
UNKNOWN = "unknown"
#: A header name (RFC 9110's token).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Transport failures that mean the request never reached a server.
CONNECT_FAILURES = frozenset({"connect error", "connect timeout"})
MAX_REQUESTS = 1_000_000
MAX_CONCURRENCY = 1000
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@dataclass(frozen=True, slots=True)
class Outcome:
    """One finished request: an answer (``status``) or a transport failure (``error``)."""

    seconds: float
    status: int | None = None
    version: str | None = None
    error: str | None = None
    reason: str = ""

    @property
    def failed(self) -> bool:
        return self.error is not None or (self.status is not None and self.status >= 500)


@dataclass(frozen=True, slots=True)
class Plan:
    url: str
    method: str = "GET"
    requests: int = 100
    concurrency: int = 8
    duration: float | None = None
    timeout: float = 10.0
    slow: float = 1.0
    headers: Mapping[str, str] = field(default_factory=dict)
    max_error_rate: float = 0.01


@dataclass(frozen=True, slots=True)
class Run:
    outcomes: Sequence[Outcome]
    elapsed: float
    #: Why it ended before every planned request finished ("" if it did not).
    stopped: str = ""


# Pure parts --------------------------------------------------------------------------------


def version_of(headers: Mapping[str, str], body: bytes) -> str:
    """The ROAR status version that answered: the ``X-Roar-Version`` header, else the legacy
    version page's body, else ``unknown`` (another server, or a ROAR before the header)."""
    version = headers.get(VERSION_HEADER)
    if version:
        return version
    match = _LEGACY_VERSION.match(body[:256])
    return match.group(1).decode("ascii", "replace") if match else UNKNOWN


def error_kind(exc: BaseException) -> str:
    """A transport failure's kind, as the summary counts it."""
    import httpx

    kinds: tuple[tuple[type[BaseException], str], ...] = (
        (httpx.ConnectTimeout, "connect timeout"),
        (httpx.ReadTimeout, "read timeout"),
        (httpx.WriteTimeout, "write timeout"),
        (httpx.PoolTimeout, "pool timeout"),
        (httpx.TimeoutException, "timeout"),
        (httpx.ConnectError, "connect error"),
        (httpx.ReadError, "read error"),
        (httpx.WriteError, "write error"),
        (httpx.RemoteProtocolError, "protocol error"),
    )
    for kind, name in kinds:
        if isinstance(exc, kind):
            return name
    return f"other ({type(exc).__name__})"


def failure_reason(exc: BaseException) -> str:
    """The most telling words of a transport failure: the OS error underneath (httpx's async
    client only says "All connection attempts failed"), else the error's own message."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        code = getattr(cause, "errno", None)
        if isinstance(code, int) and code in errno.errorcode:
            return os.strerror(code)
        cause = cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__


def parse_header(text: str) -> tuple[str, str]:
    """``'Name: value'`` as a pair; ValueError naming the problem otherwise."""
    name, sep, value = text.partition(":")
    if not sep or not _TOKEN.fullmatch(name):
        raise ValueError(f"expected 'Name: value', got {text!r}")
    return name, value.strip()


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _counts(values: Iterable[Any]) -> dict[str, int]:
    counted = Counter(str(v) for v in values)
    return dict(sorted(counted.items(), key=lambda kv: (-kv[1], kv[0])))


def summarize(run: Run, plan: Plan) -> dict[str, Any]:
    """The run's counts, as ``--json`` prints them."""
    outcomes = run.outcomes
    completed = len(outcomes)
    answered = [o for o in outcomes if o.status is not None]
    failed = sum(o.failed for o in outcomes)
    ratio = failed / completed if completed else 0.0
    latencies = sorted(o.seconds for o in answered)
    latency = (
        {f"p{p}": round(percentile(latencies, p) * 1000, 2) for p in (50, 90, 99)}
        | {"max": round(latencies[-1] * 1000, 2)}
        if latencies
        else None
    )
    return {
        "url": plan.url,
        "method": plan.method,
        "requested": plan.requests,
        "completed": completed,
        "answered": len(answered),
        "stopped_early": run.stopped or None,
        "elapsed_seconds": round(run.elapsed, 3),
        "requests_per_second": round(completed / run.elapsed, 1) if run.elapsed > 0 else None,
        "concurrency": plan.concurrency,
        "versions": _counts(o.version for o in answered),
        "statuses": _counts(o.status for o in answered),
        "errors": _counts(o.error for o in outcomes if o.error),
        "failed": failed,
        "failed_ratio": round(ratio, 4),
        "max_error_rate": plan.max_error_rate,
        "slow": sum(o.seconds >= plan.slow for o in answered),
        "slow_seconds": plan.slow,
        "latency_ms": latency,
        "ok": completed > 0 and ratio <= plan.max_error_rate,
    }


def _share(count: int, total: int) -> str:
    return f"{100 * count / total:.1f}%" if total else "-"


def _aligned(blocks: Sequence[Sequence[Sequence[str]]]) -> list[str]:
    """Blocks of rows in shared columns, a blank line between blocks: the first column
    left-aligned, the next two (count, share) right-aligned, any further one left as is."""
    rows = [row for block in blocks for row in block]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines: list[str] = []
    for block in blocks:
        lines.append("")
        for row in block:
            cells = [row[0].ljust(widths[0]), row[1].rjust(widths[1]), row[2].rjust(widths[2])]
            lines.append("  ".join([*cells, *row[3:]]).rstrip())
    return lines


def render_table(summary: Mapping[str, Any]) -> str:
    """The summary as aligned plain text, with shares."""
    completed, answered = summary["completed"], summary["answered"]
    rate = summary["requests_per_second"]
    lines = [
        f"{summary['method']} {summary['url']}",
        f"{completed} of {summary['requested']} requests completed in "
        f"{summary['elapsed_seconds']:.2f} s"
        + (f" ({rate:g}/s)" if rate is not None else "")
        + f", concurrency {summary['concurrency']}",
    ]
    if summary["stopped_early"]:
        lines.append(f"stopped early: {summary['stopped_early']}")
    blocks = []
    for title, counts, total in (
        ("VERSION", summary["versions"], answered),
        ("STATUS", summary["statuses"], answered),
        ("ERROR", summary["errors"], completed),
    ):
        if counts:
            rows = [[title, "COUNT", "SHARE"]]
            rows += [[k, str(v), _share(v, total)] for k, v in counts.items()]
            blocks.append(rows)
    limit = f"{100 * summary['max_error_rate']:g}%"
    blocks.append([
        ["FAILED", str(summary["failed"]), _share(summary["failed"], completed),
         f"5xx, connection errors, timeouts (limit {limit})"],
        ["SLOW", str(summary["slow"]), _share(summary["slow"], answered),
         f"answers taking {summary['slow_seconds']:g} s or more"],
    ])  # fmt: skip
    lines += _aligned(blocks)
    if summary["latency_ms"]:
        lines += ["", "LATENCY  " + "  ".join(
            f"{k} {v:.1f} ms" for k, v in summary["latency_ms"].items())]  # fmt: skip
    return "\n".join(lines)


# Running -----------------------------------------------------------------------------------


async def _one(client: httpx.AsyncClient, plan: Plan) -> Outcome:
    import httpx

    started = time.perf_counter()
    try:
        response = await client.request(plan.method, plan.url)
    except httpx.TransportError as exc:
        return Outcome(
            time.perf_counter() - started, error=error_kind(exc), reason=failure_reason(exc)
        )
    return Outcome(
        time.perf_counter() - started,
        status=response.status_code,
        version=version_of(response.headers, response.content),
    )


async def run(plan: Plan) -> Run:
    """Send ``plan.requests`` requests, at most ``plan.concurrency`` at a time, for at most
    ``plan.duration`` seconds (requests still in flight then are cut off and not counted).
    Stops at once when the first ``concurrency`` requests all failed to connect."""
    import httpx

    outcomes: list[Outcome] = []
    issued = 0
    unreachable = asyncio.Event()
    workers = min(plan.concurrency, plan.requests)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal issued
        while issued < plan.requests and not unreachable.is_set():
            issued += 1
            outcome = await _one(client, plan)
            outcomes.append(outcome)
            if (
                outcome.error in CONNECT_FAILURES
                and len(outcomes) >= workers
                and all(o.error in CONNECT_FAILURES for o in outcomes)
            ):
                unreachable.set()

    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    started = time.perf_counter()
    async with httpx.AsyncClient(
        headers=dict(plan.headers), timeout=plan.timeout, limits=limits
    ) as client:
        tasks = [asyncio.create_task(worker(client)) for _ in range(workers)]
        done, pending = await asyncio.wait(tasks, timeout=plan.duration)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            task.result()  # a bug in a worker surfaces here, not as a silent short run
    elapsed = time.perf_counter() - started
    stopped = ""
    if unreachable.is_set() and len(outcomes) < plan.requests:
        stopped = f"the first {len(outcomes)} requests all failed to connect"
    elif pending:
        stopped = f"--duration {plan.duration:g} s reached"
    return Run(outcomes, elapsed, stopped)


def _unreachable(outcomes: Sequence[Outcome]) -> Outcome | None:
    """The first failure when every request failed to connect, else None."""
    if outcomes and all(o.error in CONNECT_FAILURES for o in outcomes):
        return outcomes[0]
    return None


# The command -------------------------------------------------------------------------------


def _headers(_ctx: click.Context, _param: click.Parameter, values: Sequence[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for text in values:
        try:
            name, value = parse_header(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        headers[name] = value
    return headers


def _url(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    import httpx

    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise click.BadParameter(f"{value!r}: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise click.BadParameter(f"{value!r} is not an http:// or https:// URL")
    return value


@click.command()
@click.argument("url", callback=_url)
@click.option(
    "-n",
    "--requests",
    "count",
    type=click.IntRange(1, MAX_REQUESTS),
    default=100,
    show_default=True,
    help="Requests to send.",
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(1, MAX_CONCURRENCY),
    default=8,
    show_default=True,
    help="Requests in flight at once.",
)
@click.option(
    "--duration",
    type=click.FloatRange(0, 86400, min_open=True),
    help="Stop after this many seconds, even if requests remain.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0, 600, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds each request may take.",
)
@click.option(
    "--slow",
    type=click.FloatRange(0),
    default=1.0,
    show_default=True,
    help="Answers taking at least this many seconds count as slow.",
)
@click.option(
    "-H",
    "--header",
    "headers",
    multiple=True,
    callback=_headers,
    help="'Name: value' sent with every request (repeatable).",
)
@click.option(
    "-X",
    "--method",
    type=click.Choice(METHODS, case_sensitive=False),
    default="GET",
    show_default=True,
)
@click.option(
    "--max-error-rate",
    type=click.FloatRange(0, 1),
    default=0.01,
    show_default=True,
    help="Exit 1 when the share of failed requests (5xx, connection errors, "
    "timeouts) is above this.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary instead of a table.")
def load(url: str, count: int, concurrency: int, duration: float | None, timeout: float,
         slow: float, headers: dict[str, str], method: str, max_error_rate: float,
         as_json: bool) -> None:  # fmt: skip
    """Send requests to URL and count versions, statuses, failures and latency.

    Versions come from each answer's X-Roar-Version header (every ROAR answer has it), else
    from the legacy /roar/api/v1/status/version body. Exit 0 when the share of failed requests
    is at most --max-error-rate, 1 above it or when URL does not answer at all.
    """
    plan = Plan(
        url=url, method=method.upper(), requests=count, concurrency=concurrency,
        duration=duration, timeout=timeout, slow=slow, headers=headers,
        max_error_rate=max_error_rate,
    )  # fmt: skip
    result = asyncio.run(run(plan))
    down = _unreachable(result.outcomes)
    if down is not None:
        raise click.ClickException(f"{url}: cannot connect: {down.reason}")
    summary = summarize(result, plan)
    click.echo(json.dumps(summary, indent=2) if as_json else render_table(summary))
    if not summary["completed"]:
        raise click.ClickException(f"no request completed ({result.stopped})")
    if not summary["ok"]:
        raise click.ClickException(
            f"{summary['failed']} of {summary['completed']} requests failed "
            f"({100 * summary['failed_ratio']:.1f}%), above --max-error-rate {max_error_rate:g}"
        )

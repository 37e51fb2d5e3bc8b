"""`roar load`'s pure parts: reading versions, percentiles, the summary and its verdict."""

from __future__ import annotations

import httpx
import pytest

from roar.load import (
    Outcome,
    Plan,
    Run,
    error_kind,
    failure_reason,
    parse_header,
    percentile,
    render_table,
    summarize,
    version_of,
)


@pytest.mark.parametrize(
    ("headers", "body", "version"),
    [
        ({"x-roar-version": "00.02.00"}, b"<p>Version</p>00.01.00", "00.02.00"),  # header wins
        ({}, b"<p>Version</p>00.01.00", "00.01.00"),  # the original app's page
        ({}, b"<p>Version</p>\n00.03.01\n", "00.03.01"),
        ({}, b'[{"id": 1}]', "unknown"),
        ({}, b"", "unknown"),
    ],
)
def test_version_of(headers: dict[str, str], body: bytes, version: str) -> None:
    assert version_of(httpx.Headers(headers), body) == version


def test_parse_header() -> None:
    assert parse_header("X-Canary: yes") == ("X-Canary", "yes")
    assert parse_header("Authorization:Bearer a:b") == ("Authorization", "Bearer a:b")
    for bad in ("no colon", ": value", "Bad Name : v"):
        with pytest.raises(ValueError, match="Name: value"):
            parse_header(bad)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 90), percentile(values, 99)) == (
        50.0, 90.0, 99.0)  # fmt: skip
    assert percentile([7.0], 99) == 7.0


def test_error_kinds_and_reasons() -> None:
    request = httpx.Request("GET", "http://x/")
    assert error_kind(httpx.ConnectError("x", request=request)) == "connect error"
    assert error_kind(httpx.ConnectTimeout("x", request=request)) == "connect timeout"
    assert error_kind(httpx.ReadTimeout("x", request=request)) == "read timeout"
    assert error_kind(httpx.RemoteProtocolError("x", request=request)) == "protocol error"
    try:
        try:
            raise ConnectionRefusedError(111, "Connect call failed")
        except OSError as inner:
            raise httpx.ConnectError("All connection attempts failed") from inner
    except httpx.ConnectError as exc:
        assert failure_reason(exc) == "Connection refused"


def _run(*outcomes: Outcome) -> Run:
    return Run(outcomes, elapsed=1.0)


def test_failures_are_5xx_and_transport_errors_not_4xx() -> None:
    run = _run(
        Outcome(0.01, status=200, version="00.01.00"),
        Outcome(0.02, status=404, version="00.01.00"),
        Outcome(0.03, status=503, version="00.02.00"),
        Outcome(0.5, error="read timeout"),
    )
    summary = summarize(run, Plan(url="http://x/", max_error_rate=0.5))
    assert summary["failed"] == 2 and summary["failed_ratio"] == 0.5
    assert summary["ok"] is True  # at the limit is not above it
    assert summary["versions"] == {"00.01.00": 2, "00.02.00": 1}
    assert summary["statuses"] == {"200": 1, "404": 1, "503": 1}
    assert summary["errors"] == {"read timeout": 1} and summary["answered"] == 3
    assert summarize(run, Plan(url="http://x/", max_error_rate=0.49))["ok"] is False


def test_slow_counts_at_the_bound() -> None:
    run = _run(Outcome(0.99, status=200), Outcome(1.0, status=200), Outcome(2.0, status=200))
    summary = summarize(run, Plan(url="http://x/", slow=1.0))
    assert summary["slow"] == 2 and summary["latency_ms"]["max"] == 2000.0


def test_nothing_completed_is_not_ok() -> None:
    summary = summarize(Run((), 1.0, "--duration 1 s reached"), Plan(url="http://x/"))
    assert summary["ok"] is False and summary["latency_ms"] is None


def test_table_shares_and_alignment() -> None:
    run = _run(
        *[Outcome(0.01, status=200, version="00.01.00")] * 3,
        Outcome(0.01, status=200, version="00.02.00"),
        Outcome(0.1, error="connect error", reason="Connection refused"),
    )
    text = render_table(summarize(run, Plan(url="http://x/", requests=5)))
    rows = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    assert rows["00.01.00"].split() == ["00.01.00", "3", "75.0%"]
    assert rows["00.02.00"].split() == ["00.02.00", "1", "25.0%"]
    assert rows["connect"].split() == ["connect", "error", "1", "20.0%"]
    assert rows["FAILED"].split()[:3] == ["FAILED", "1", "20.0%"]
    # One set of columns for every block: the shares end where the SHARE headings end.
    ends = {len(rows[k].rstrip()) for k in ("VERSION", "00.01.00", "STATUS", "200", "ERROR")}
    assert len(ends) == 1

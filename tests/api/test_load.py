"""`roar load`, used as a person or a script would: the command in a subprocess against real
ROAR servers (v1, v2, chaos) and a stand-in for the original app, all on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from support.net import free_port
from support.roar import RoarServer, embedded_server, run_roar

VERSION_PATH = "/roar/api/v1/status/version"
SUMMARY_KEYS = {
    "url", "method", "requested", "completed", "answered", "stopped_early", "elapsed_seconds",
    "requests_per_second", "concurrency", "versions", "statuses", "errors", "failed",
    "failed_ratio", "max_error_rate", "slow", "slow_seconds", "latency_ms", "ok",
}  # fmt: skip


def roar_load(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return run_roar("load", *args, timeout=timeout)


def summary_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    summary = json.loads(result.stdout)
    assert set(summary) == SUMMARY_KEYS
    return summary


@pytest.fixture(scope="module")
def v1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoarServer]:
    """A v1 server with chaos on, to make it fail and slow on purpose."""
    # A short grace: the duration tests leave delayed requests in flight at shutdown.
    server = embedded_server(
        tmp_path_factory, "load-v1", {"ROAR_CHAOS": "true", "ROAR_SHUTDOWN_GRACE": "1"}
    )
    yield server
    server.stop()


@pytest.fixture
def chaos(v1: RoarServer) -> Iterator[RoarServer]:
    yield v1
    httpx.delete(f"{v1.url}/chaos")


@pytest.fixture(scope="module")
def v2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoarServer]:
    server = embedded_server(tmp_path_factory, "load-v2", {"ROAR_FLAVOR": "v2"})
    yield server
    server.stop()


class _Original(BaseHTTPRequestHandler):
    """The original workshop app's version page: the version in the body, no header."""

    seen: list[dict[str, str]] = []  # noqa: RUF012

    def do_GET(self) -> None:
        _Original.seen.append(dict(self.headers))
        body = b"<p>Version</p>00.01.00"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture(scope="module")
def original() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Original)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# Counting ---------------------------------------------------------------------------------


def test_counts_the_version_of_each_server(v1: RoarServer, v2: RoarServer) -> None:
    for server, version in ((v1, "00.01.00"), (v2, "00.02.00")):
        result = roar_load(f"{server.url}{VERSION_PATH}", "-n", "30", "-c", "4", "--json")
        assert result.returncode == 0, result.stderr
        summary = summary_of(result)
        assert summary["versions"] == {version: 30} and summary["statuses"] == {"200": 30}
        assert summary["completed"] == summary["answered"] == 30 and summary["ok"] is True
        assert summary["failed"] == 0 and summary["errors"] == {}
        assert set(summary["latency_ms"]) == {"p50", "p90", "p99", "max"}


def test_counts_versions_on_any_route(v2: RoarServer) -> None:
    summary = summary_of(roar_load(f"{v2.url}/api/v1/agents/999", "-n", "5", "--json"))
    assert summary["versions"] == {"00.02.00": 5} and summary["statuses"] == {"404": 5}
    assert summary["ok"] is True  # a 4xx is an answer, not a failure


def test_reads_the_version_from_the_original_apps_body(original: str) -> None:
    result = roar_load(f"{original}{VERSION_PATH}", "-n", "6", "-c", "2", "--json",
                       "-H", "x-canary: yes", "--header", "X-Team:  blue ")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert summary_of(result)["versions"] == {"00.01.00": 6}
    assert {(h.get("x-canary"), h.get("X-Team")) for h in _Original.seen[-6:]} == {("yes", "blue")}


def test_the_table_for_people(v1: RoarServer) -> None:
    result = roar_load(f"{v1.url}{VERSION_PATH}", "-n", "20")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].startswith("20 of 20 requests completed in ")
    version_row = next(line for line in lines if line.startswith("00.01.00"))
    assert version_row.split() == ["00.01.00", "20", "100.0%"]
    header = next(line for line in lines if line.startswith("VERSION"))
    assert header.index("SHARE") + len("SHARE") == len(version_row)  # aligned columns
    assert any(line.startswith("LATENCY  p50 ") for line in lines)


# Failing ----------------------------------------------------------------------------------


def test_all_errors_exit_1_with_the_counts(chaos: RoarServer) -> None:
    httpx.put(f"{chaos.url}/chaos/faults", json={"error_rate": 1.0, "error_status": 503})
    result = roar_load(f"{chaos.url}{VERSION_PATH}", "-n", "25", "--json")
    assert result.returncode == 1
    summary = summary_of(result)
    assert summary["statuses"] == {"503": 25} and summary["versions"] == {"00.01.00": 25}
    assert summary["failed"] == 25 and summary["failed_ratio"] == 1.0
    assert summary["ok"] is False
    assert result.stderr.strip() == (
        "roar: error: 25 of 25 requests failed (100.0%), above --max-error-rate 0.01"
    )
    tolerant = roar_load(f"{chaos.url}{VERSION_PATH}", "-n", "5", "--max-error-rate", "1")
    assert tolerant.returncode == 0, tolerant.stderr


def test_no_errors_exit_0(chaos: RoarServer) -> None:
    httpx.put(f"{chaos.url}/chaos/faults", json={"error_rate": 0.0})
    result = roar_load(f"{chaos.url}{VERSION_PATH}", "-n", "25", "--max-error-rate", "0",
                       "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert summary_of(result)["statuses"] == {"200": 25} and result.stderr == ""


def test_slow_answers_are_counted(chaos: RoarServer) -> None:
    result = roar_load(f"{chaos.url}/chaos/delay/0.3", "-n", "4", "-c", "4", "--slow", "0.3",
                       "--json")  # fmt: skip
    summary = summary_of(result)
    assert summary["slow"] == 4 and summary["latency_ms"]["p50"] >= 300


def test_duration_bounds_the_run(chaos: RoarServer) -> None:
    result = roar_load(f"{chaos.url}/chaos/delay/0.4", "-n", "50", "-c", "1", "--duration", "1",
                       "--json")  # fmt: skip
    summary = summary_of(result)
    assert 0 < summary["completed"] < 50 and summary["requested"] == 50
    assert "--duration" in summary["stopped_early"]
    assert result.returncode == 0, result.stderr  # what did complete, succeeded


def test_duration_cuts_requests_in_flight(chaos: RoarServer) -> None:
    result = roar_load(f"{chaos.url}/chaos/delay/5", "-n", "3", "-c", "3", "--duration", "1",
                       "--json", timeout=30)  # fmt: skip
    summary = summary_of(result)
    assert summary["completed"] == 0 and summary["elapsed_seconds"] < 5
    assert result.returncode == 1 and "no request completed" in result.stderr


def test_timeouts_are_failures_by_kind(chaos: RoarServer) -> None:
    result = roar_load(f"{chaos.url}/chaos/delay/3", "-n", "2", "--timeout", "0.3", "--json")
    summary = summary_of(result)
    assert result.returncode == 1
    assert summary["errors"] == {"read timeout": 2} and summary["failed"] == 2
    assert summary["answered"] == 0 and summary["latency_ms"] is None


# The target is not there, or the command is wrong -----------------------------------------


def test_unreachable_target_is_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}{VERSION_PATH}"  # nothing listens there
    result = roar_load(url, "-n", "50")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [f"roar: error: {url}: cannot connect: Connection refused"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("http://127.0.0.1:1/", "--requests", "0"), "--requests"),
        (("http://127.0.0.1:1/", "--header", "no-colon"), "Name: value"),
        (("ftp://127.0.0.1/",), "http://"),
        (("http://127.0.0.1:1/", "--max-error-rate", "2"), "--max-error-rate"),
        (("http://127.0.0.1:1/", "--method", "BREW"), "--method"),
        ((), "URL"),
    ],
)
def test_bad_usage_exits_2(args: tuple[str, ...], message: str) -> None:
    result = roar_load(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("roar: error: ") and message in lines[0]

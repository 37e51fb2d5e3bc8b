"""Chaos state and settings (roar.chaos, roar.config), and the answer every request gets even
when a route fails unexpectedly (X-Roar-Version, X-Request-ID)."""

from __future__ import annotations

import random
from pathlib import Path

import httpx
import pytest

from roar.chaos import Chaos, Faults
from roar.config import ConfigError, Settings
from support.roar import clear_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_settings(monkeypatch)


def _draws(faults: Faults, n: int = 2000) -> list[tuple[float, int | None]]:
    chaos = Chaos(faults, rng=random.Random(8))
    return [chaos.draw() for _ in range(n)]


def test_rates_zero_and_one_are_never_and_always() -> None:
    assert set(_draws(Faults())) == {(0.0, None)}
    assert set(_draws(Faults(error_rate=1, error_status=503))) == {(0.0, 503)}
    assert set(_draws(Faults(delay_rate=1, delay_seconds=0.2))) == {(0.2, None)}
    assert set(_draws(Faults(delay_rate=1, delay_seconds=0))) == {(0.0, None)}


def test_rates_between_are_shares() -> None:
    draws = _draws(Faults(error_rate=0.25, delay_rate=0.5, delay_seconds=1))
    errors = sum(error is not None for _, error in draws) / len(draws)
    delays = sum(delay > 0 for delay, _ in draws) / len(draws)
    assert 0.2 < errors < 0.3 and 0.45 < delays < 0.55


async def test_reset_goes_back_to_the_settings() -> None:
    start = Faults(error_rate=0.5)
    chaos = Chaos(start)
    chaos.faults, chaos.ready, chaos.healthy, chaos.slow_query_seconds = Faults(), False, False, 3
    await chaos.reset()
    assert (chaos.faults, chaos.ready, chaos.healthy, chaos.slow_query_seconds) == (
        start, True, True, 0.0)  # fmt: skip
    assert chaos.snapshot()["faults"]["error_rate"] == 0.5


def test_settings_chaos_off_by_default_and_refused_in_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().chaos is False and Settings().production is False
    monkeypatch.setenv("ROAR_CHAOS", "true")
    assert Chaos.from_settings(Settings()).faults == Faults()
    monkeypatch.setenv("ROAR_PRODUCTION", "true")
    with pytest.raises(ConfigError, match=r"ROAR_CHAOS and ROAR_PRODUCTION"):
        Settings()
    monkeypatch.setenv("ROAR_CHAOS", "false")
    assert Settings().production is True


@pytest.mark.parametrize("status", ["200", "420", "600"])
def test_error_status_must_be_a_real_error(monkeypatch: pytest.MonkeyPatch, status: str) -> None:
    monkeypatch.setenv("ROAR_CHAOS_ERROR_STATUS", status)
    with pytest.raises(ConfigError, match=f"^ROAR_CHAOS_ERROR_STATUS: {status} "):
        Settings()


async def test_an_unexpected_error_still_carries_id_and_version(tmp_path: Path) -> None:
    from roar.api.app import create_app

    app = create_app(Settings(data_dir=tmp_path, flavor="v2"))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://roar") as client:
        r = await client.get("/boom", headers={"X-Request-ID": "bug-1"})
    assert r.status_code == 500 and r.headers["content-type"] == "application/problem+json"
    assert r.headers["x-roar-version"] == "00.02.00" and r.headers["x-request-id"] == "bug-1"
    assert "a bug" not in r.text

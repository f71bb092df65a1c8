"""The worker's event loop: uvloop when installed, asyncio's when asked for, a clear
error for anything else."""

from __future__ import annotations

import asyncio
import importlib
import logging
from types import ModuleType

import pytest
import uvloop

from media_worker import runtime


def test_uvloop_is_the_default_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(runtime.EVENT_LOOP_ENV, raising=False)
    name, factory = runtime.loop_factory()
    assert name.startswith("uvloop ")
    loop = factory()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_the_environment_chooses_the_standard_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(runtime.EVENT_LOOP_ENV, "asyncio")
    name, factory = runtime.loop_factory()
    loop = factory()
    try:
        assert name == "asyncio"
        assert not isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_without_uvloop_the_default_is_the_standard_loop_and_asking_for_it_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.import_module

    def without_uvloop(name: str, package: str | None = None) -> ModuleType:
        if name == "uvloop":
            raise ImportError("No module named 'uvloop'")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", without_uvloop)
    assert runtime.loop_factory("")[0] == "asyncio"
    with pytest.raises(ValueError, match=r"VOICEMAIL_EVENT_LOOP=uvloop, but uvloop is not"):
        runtime.loop_factory("uvloop")


def test_an_unknown_choice_names_the_variable() -> None:
    with pytest.raises(ValueError, match=r"VOICEMAIL_EVENT_LOOP: 'trio' is not one of"):
        runtime.loop_factory("trio")


@pytest.mark.parametrize("choice", ["uvloop", "asyncio"])
def test_run_runs_the_coroutine_on_the_chosen_loop(
    choice: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def which() -> str:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop()).__module__

    caplog.set_level(logging.INFO, "voicemail.runtime")
    module = runtime.run(which(), choice)
    assert module.startswith("uvloop") == (choice == "uvloop")
    assert f"event loop: {choice}" in caplog.text


def test_run_with_a_bad_choice_exits_with_status_2(caplog: pytest.LogCaptureFixture) -> None:
    async def never() -> None:
        raise AssertionError("must not run")

    with pytest.raises(SystemExit) as exit_:
        runtime.run(never(), "libev")
    assert exit_.value.code == 2
    assert "VOICEMAIL_EVENT_LOOP: 'libev'" in caplog.text

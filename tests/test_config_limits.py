"""The call-time and delivery-retry settings of the worker's configuration."""

from __future__ import annotations

import pytest

from media_worker.config import ConfigError, parse_config


def test_defaults_and_values() -> None:
    assert parse_config({}).apps.max_call_time == 1800.0
    assert (parse_config({}).apps.retry_delay, parse_config({}).apps.retry_max_delay) == (5, 300)
    config = parse_config({"apps": {"max_call_time": 600, "retry_delay": 1, "retry_max_delay": 60}})
    assert (config.apps.max_call_time, config.apps.retry_delay, config.apps.retry_max_delay) == (
        600.0,
        1.0,
        60.0,
    )


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"apps": {"max_call_time": 0}}, "apps.max_call_time: must be above 0"),
        ({"apps": {"max_call_time": "1h"}}, "apps.max_call_time: expected a number, got '1h'"),
        ({"apps": {"max_call_time": 100}}, "apps.max_call_time: must be above voicemail.max_record_time (100 <= 120)"),
        ({"apps": {"retry_delay": -1}}, "apps.retry_delay: must be above 0"),
        ({"apps": {"retry_delay": 10, "retry_max_delay": 5}}, "apps.retry_max_delay: must be at least retry_delay"),
    ],
)  # fmt: skip
def test_errors_name_the_key(data: object, error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert str(caught.value).startswith(error)


def test_a_shorter_record_time_allows_a_shorter_call() -> None:
    config = parse_config({"apps": {"max_call_time": 100}, "voicemail": {"max_record_time": 60}})
    assert config.apps.max_call_time == 100.0

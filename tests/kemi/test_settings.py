"""kemi.settings: the proxy's settings from kamailio.cfg defines, as $def() gives them."""

from __future__ import annotations

import pytest

from kemi.settings import DEFAULT_VOICEMAIL_STATUSES, Settings, SettingsError, load_settings


def settings(**defines: str) -> Settings:
    return load_settings(defines.get)


def test_no_defines_give_the_defaults() -> None:
    assert settings() == Settings()
    assert settings().voicemail_statuses == DEFAULT_VOICEMAIL_STATUSES == (404, 408, 480, 486)
    assert (settings().voicebox_number, settings().annrecorder_number) == ("1000", "1001")


def test_string_defines_keep_their_quotes_in_def_and_lose_them_here() -> None:
    loaded = settings(
        VM_VOICEBOX_NUMBER='"*98"',
        VM_ANNRECORDER_NUMBER='"*99"',
        VM_ON_STATUS='"486,408"',
        VM_GREETING_TYPE='"unavail"',
    )
    assert (loaded.voicebox_number, loaded.annrecorder_number) == ("*98", "*99")
    assert loaded.voicemail_statuses == (486, 408)
    assert loaded.greeting_type == "unavail"


def test_number_defines() -> None:
    loaded = settings(VM_NO_ANSWER_TIMEOUT="30", VM_WORKER_SET="2", VM_WORKER_ALGORITHM="8")
    assert (loaded.no_answer_timeout, loaded.worker_set, loaded.worker_algorithm) == (30, 2, 8)


def test_worker_timer_defines() -> None:
    assert (Settings().worker_answer_ms, Settings().worker_first_response_ms) == (60000, 2000)
    loaded = settings(VM_WORKER_ANSWER_MS="30000", VM_WORKER_FIRST_RESPONSE_MS="500")
    assert (loaded.worker_answer_ms, loaded.worker_first_response_ms) == (30000, 500)
    with pytest.raises(SettingsError, match="VM_WORKER_ANSWER_MS: 0 is outside"):
        settings(VM_WORKER_ANSWER_MS="0")


def test_rtpengine_follows_the_switch() -> None:
    assert load_settings(lambda name: None, rtpengine=False).rtpengine is False


@pytest.mark.parametrize(
    ("defines", "message"),
    [
        ({"VM_NO_ANSWER_TIMEOUT": "soon"}, "VM_NO_ANSWER_TIMEOUT: 'soon' is not a number"),
        ({"VM_NO_ANSWER_TIMEOUT": "0"}, "VM_NO_ANSWER_TIMEOUT: 0 is outside 1..600"),
        ({"VM_NO_ANSWER_TIMEOUT": "601"}, "VM_NO_ANSWER_TIMEOUT: 601 is outside 1..600"),
        ({"VM_WORKER_SET": "-1"}, "VM_WORKER_SET: -1 is outside 0..65535"),
        ({"VM_ON_STATUS": '"486,200"'}, "VM_ON_STATUS: 200 is outside 300..699"),
        ({"VM_ON_STATUS": '""'}, "VM_ON_STATUS: no status codes"),
        ({"VM_ON_STATUS": '"486;408"'}, "VM_ON_STATUS: '486;408' is not a number"),
        ({"VM_VOICEBOX_NUMBER": '""'}, "VM_VOICEBOX_NUMBER: '' is not a dialable number"),
        ({"VM_VOICEBOX_NUMBER": '"10 00"'}, "VM_VOICEBOX_NUMBER: '10 00' is not a dialable number"),
        (
            {"VM_ANNRECORDER_NUMBER": '"1000"'},
            "VM_VOICEBOX_NUMBER and VM_ANNRECORDER_NUMBER are the same",
        ),
        ({"VM_GREETING_TYPE": '"../x"'}, "VM_GREETING_TYPE: '../x' is not a greeting type"),
        ({"VM_GREETING_TYPE": '""'}, "VM_GREETING_TYPE: '' is not a greeting type"),
    ],
)
def test_errors_name_the_define(defines: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as error:
        settings(**defines)
    assert str(error.value) == message


def test_settings_error_is_a_value_error() -> None:
    assert issubclass(SettingsError, ValueError)


def test_limits_and_the_secret() -> None:
    loaded = settings(
        VM_MAX_BODY="4096",
        VM_MAX_MEDIA="2",
        VM_MAX_CALLS_PER_SOURCE="3",
        VM_BAN_TIME="60",
        VM_AUTH_FAIL_LIMIT="5",
        VM_SECRET='"s3cret-s3cret-s3cret"',
    )
    assert (loaded.max_body, loaded.max_media, loaded.max_calls_per_source) == (4096, 2, 3)
    assert (loaded.ban_time, loaded.auth_fail_limit) == (60, 5)
    assert loaded.secret == "s3cret-s3cret-s3cret"
    assert "s3cret" not in repr(loaded)
    assert (Settings().max_body, Settings().max_media, Settings().secret) == (8192, 4, None)


@pytest.mark.parametrize(
    ("defines", "message"),
    [
        ({"VM_SECRET": '"short"'}, "VM_SECRET: a signing secret is 16 to 256 characters"),
        ({"VM_MAX_MEDIA": "0"}, "VM_MAX_MEDIA: 0 is outside 1..64"),
        ({"VM_MAX_BODY": "\u00b2"}, "VM_MAX_BODY: '\u00b2' is not a number"),
    ],
)
def test_bad_limits_name_the_define(defines: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(defines.get)

"""PIN hashing and lockout."""

from __future__ import annotations

import pytest

from media_worker.apps.pin import Lockout, PinError, check_new_pin, hash_pin, verify_pin


def test_hash_and_verify() -> None:
    stored = hash_pin("4711")
    assert stored.startswith("scrypt$16384$8$1$")
    assert "4711" not in stored
    assert verify_pin("4711", stored)
    assert not verify_pin("4712", stored)
    assert hash_pin("4711") != stored  # salted


def test_known_vector_is_stable() -> None:
    salt = bytes(range(16))
    assert hash_pin("123456", salt) == hash_pin("123456", salt)


@pytest.mark.parametrize(
    ("pin", "error"), [("12", "4 to 16 digits"), ("12ab", "digits 0-9"), ("١٢٣٤", "digits 0-9")]
)
def test_bad_new_pins(pin: str, error: str) -> None:
    with pytest.raises(PinError, match=error):
        check_new_pin(pin)


def test_unreadable_hash() -> None:
    with pytest.raises(PinError, match="unreadable"):
        verify_pin("1234", "md5$abc")


def test_lockout_after_ten_failures_within_an_hour() -> None:
    lock = Lockout()
    for i in range(9):
        assert not lock.failed(now=i * 60.0)
    assert lock.failed(now=600.0)  # the tenth
    assert lock.locked(now=600.0 + 899)
    assert not lock.locked(now=600.0 + 900)


def test_old_failures_expire_and_success_clears() -> None:
    lock = Lockout()
    for i in range(9):
        lock.failed(now=float(i))
    assert not lock.failed(now=3700.0)  # the first nine are over an hour old
    lock.succeeded()
    assert lock.failures == []

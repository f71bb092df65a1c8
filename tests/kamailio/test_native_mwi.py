"""Message-waiting indication through the native cfg (WITH_AUTH, WITH_MWI): the real
Kamailio runs kamailio.cfg with WITH_NATIVE (kamailio-cfg/native/), and a small UDP user agent plays
a media worker (its address is the dispatcher set's), a stranger, alice and bob."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from media_worker.lab.layout import DOMAIN
from tests.kamailio.native import use_native
from tests.kamailio.uac import Uac
from tests.support.stack import Kamailio, user_database

pytestmark = pytest.mark.integration

ALICE, BOB = f"sip:alice@{DOMAIN}", f"sip:bob@{DOMAIN}"
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}
SUMMARY = f"Messages-Waiting: yes\r\nMessage-Account: {BOB}\r\nVoice-Message: 1/0\r\n"
MWI_HEADERS = (("Event", "message-summary"), ("Expires", "600"))


class NativeMwi:
    """Kamailio on the native cfg, with alice and bob, and a worker's socket in set 1."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        db_url = user_database(
            f"sqlite://{directory / 'kamailio.sqlite'}",
            {user: (password, "box") for user, password in PASSWORDS.items()},
        )
        self.kamailio = Kamailio(
            directory,
            db_url=db_url,
            workers=[],
            rtpengine=None,
            switches=("WITH_AUTH", "WITH_VOICEMAIL", "WITH_MWI"),
        )
        self.server = f"sip:voicemail@127.0.0.1:{self.kamailio.port}"
        self.kamailio.define("MWI_SERVER_ADDRESS", f'"{self.server}"')
        use_native(directory)
        self.worker = self.uac()
        (directory / "dispatcher.list").write_text(
            f"1 sip:127.0.0.1:{self.worker.port};transport=udp\n"
        )

    def uac(self) -> Uac:
        return Uac(self.kamailio.port)

    def publish(self, uac: Uac) -> int:
        return uac.request(
            "PUBLISH",
            BOB,
            from_=BOB,
            headers=(*MWI_HEADERS, ("Content-Type", "application/simple-message-summary")),
            body=SUMMARY,
        ).status

    def log(self) -> str:
        return self.kamailio.log()[-6000:]


@pytest.fixture(scope="module")
def proxy() -> Iterator[NativeMwi]:
    directory = Path(tempfile.mkdtemp(prefix="vm-native-mwi-"))
    try:
        started = NativeMwi(directory)
        with started.kamailio:
            yield started
            started.worker.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def uac(proxy: NativeMwi) -> Iterator[Uac]:
    started = proxy.uac()
    yield started
    started.close()


def test_a_publish_from_anywhere_but_a_worker_is_refused(proxy: NativeMwi, uac: Uac) -> None:
    response = uac.request(
        "PUBLISH",
        BOB,
        from_=BOB,
        headers=(*MWI_HEADERS, ("Content-Type", "application/simple-message-summary")),
        body=SUMMARY,
        password=PASSWORDS["bob"],  # not even bob's own password
    )
    assert (response.status, response.reason) == (
        403,
        "Only media workers publish mailbox state",
    ), proxy.log()


def test_alice_cannot_subscribe_to_bobs_mailbox(proxy: NativeMwi, uac: Uac) -> None:
    response = uac.request(
        "SUBSCRIBE", BOB, from_=ALICE, headers=MWI_HEADERS, password=PASSWORDS["alice"]
    )
    assert (response.status, response.reason) == (403, "Not your mailbox"), proxy.log()
    assert "SUBSCRIBE sip:bob@lab.example from sip:alice@lab.example: 403" in proxy.log()


def test_other_event_packages_are_refused(proxy: NativeMwi, uac: Uac) -> None:
    response = uac.request("SUBSCRIBE", BOB, from_=BOB, headers=(("Event", "presence"),))
    assert (response.status, response.reason) == (489, "Bad Event"), proxy.log()


def test_presence_refuses_event_parameters_message_summary_does_not_have(
    proxy: NativeMwi, uac: Uac
) -> None:
    """The cfg passes bob's message-summary;id=1 on; presence_mwi registered none."""
    response = uac.request(
        "SUBSCRIBE",
        BOB,
        from_=BOB,
        headers=(("Event", "message-summary;id=1"), ("Expires", "600")),
        password=PASSWORDS["bob"],
    )
    assert (response.status, response.reason) == (489, "Bad Event"), proxy.log()


def test_a_subscribe_without_credentials_is_challenged(proxy: NativeMwi, uac: Uac) -> None:
    assert uac.request("SUBSCRIBE", BOB, from_=BOB, headers=MWI_HEADERS).status == 407


def test_bob_sees_what_the_worker_publishes(proxy: NativeMwi, uac: Uac) -> None:
    """bob subscribes (the first NOTIFY carries no state yet, or the state already
    published), the worker publishes, bob's REGISTER NOTIFYs the state again, and
    bob's in-dialog re-SUBSCRIBE with Expires 0 ends the subscription."""
    call_id = "bob-mwi@127.0.0.1"
    ok = uac.request(
        "SUBSCRIBE", BOB, from_=BOB, headers=MWI_HEADERS, call_id=call_id, password=PASSWORDS["bob"]
    )
    assert ok.status == 200, proxy.log()
    assert ok.header("Contact") == f"<{proxy.server}>"
    uac.wait_notify(1)
    assert proxy.publish(proxy.worker) == 200, proxy.log()
    assert SUMMARY.splitlines()[0] in uac.wait_notify(2)[-1].body
    registered = uac.request(
        "REGISTER",
        f"sip:{DOMAIN}",
        from_=BOB,
        to=BOB,
        headers=(("Expires", "60"),),
        password=PASSWORDS["bob"],
    )
    assert registered.status == 200, proxy.log()
    assert SUMMARY.splitlines()[0] in uac.wait_notify(3)[-1].body
    to_tag = (ok.header("To") or "").partition(";tag=")[2]
    ended = uac.request(
        "SUBSCRIBE",
        proxy.server,
        from_=BOB,
        to=BOB,
        headers=(("Event", "message-summary"), ("Expires", "0")),
        call_id=call_id,
        to_tag=to_tag,
    )
    assert ended.status == 200, proxy.log()
    assert "terminated" in (uac.wait_notify(4)[-1].header("Subscription-State") or "")

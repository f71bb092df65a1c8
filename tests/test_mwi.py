"""The message-summary body (RFC 3842), the PUBLISH requests (RFC 3903), a mailbox's
publication state and its durable record, without sockets or clocks."""

from __future__ import annotations

import re

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from media_worker.mwi import (
    CONTENT_TYPE,
    MailboxRecord,
    MessageSummary,
    Outcome,
    Publication,
    build_publish,
    refresh_delay,
)
from media_worker.sip.headers import Headers
from media_worker.sip.message import Request, Response, parse_message, serialize

BOB = "sip:bob@lab.example"


def test_the_body_of_a_mailbox_with_new_messages() -> None:
    body = MessageSummary(BOB, new=2, old=1).serialize()
    assert body == (
        b"Messages-Waiting: yes\r\n"
        b"Message-Account: sip:bob@lab.example\r\n"
        b"Voice-Message: 2/1 (0/0)\r\n"
    )


def test_only_saved_messages_light_nothing() -> None:
    summary = MessageSummary(BOB, new=0, old=3)
    assert not summary.waiting
    assert summary.serialize().startswith(b"Messages-Waiting: no\r\n")


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 99), st.integers(0, 99))
def test_round_trip(new: int, old: int, new_urgent: int, old_urgent: int) -> None:
    summary = MessageSummary(BOB, new, old, new_urgent, old_urgent)
    assert MessageSummary.parse(summary.serialize()) == summary


def test_parse_rfc_3842_example() -> None:
    body = (
        b"Messages-Waiting: yes\r\n"
        b"Message-Account: sip:alice@vmail.example.com\r\n"
        b"Voice-Message: 2/8 (0/2)\r\n"
        b"\r\n"
        b"Fax-Message: 0/0\r\n"
    )
    assert MessageSummary.parse(body) == MessageSummary("sip:alice@vmail.example.com", 2, 8, 0, 2)


def test_parse_without_urgent_counts_or_account() -> None:
    assert MessageSummary.parse(b"messages-waiting: no\nVoice-Message: 0/4\n") == (
        MessageSummary("", 0, 4)
    )


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"Voice-Message: 1/0\r\n", "message summary without Messages-Waiting"),
        (b"Messages-Waiting: maybe\r\n", "Messages-Waiting must be yes or no, not 'maybe'"),
        (b"Messages-Waiting: yes\r\nVoice-Message: one\r\n", "malformed Voice-Message 'one'"),
        (b"Messages-Waiting\r\n", "message summary line without a colon: 'Messages-Waiting'"),
        (b"\xff", "message summary is not UTF-8"),
        (
            b"Messages-Waiting: no\r\nVoice-Message: 1/0\r\n",
            "Messages-Waiting no disagrees with Voice-Message 1/0",
        ),
    ],
)
def test_parse_errors(body: bytes, error: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(error)}$"):
        MessageSummary.parse(body)


def test_counts_are_never_negative() -> None:
    with pytest.raises(ValueError, match="new must not be negative"):
        MessageSummary(BOB, -1, 0)
    publication = Publication(BOB, 3600)
    request = publication.request(-2, -1)  # a miscount never reaches the wire
    assert MessageSummary.parse(request.body) == MessageSummary(BOB, 0, 0)


def test_publish_request_round_trips_through_the_sip_parser() -> None:
    request = build_publish(
        MessageSummary(BOB, 1, 0), expires=3600, cseq=7, call_id="c1@vm", from_tag="f1"
    )
    request.headers.prepend("Via", "SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKx;rport")
    parsed = parse_message(serialize(request))
    assert isinstance(parsed, Request)
    assert parsed.method == "PUBLISH"
    assert parsed.uri == BOB
    headers = parsed.headers
    assert headers.get("To") == f"<{BOB}>"
    assert headers.get("From") == f"<{BOB}>;tag=f1"
    assert headers.get("Event") == "message-summary"
    assert headers.get("Expires") == "3600"
    assert headers.get("CSeq") == "7 PUBLISH"
    assert headers.get("Content-Type") == CONTENT_TYPE
    assert headers.get("SIP-If-Match") is None
    assert MessageSummary.parse(parsed.body) == MessageSummary(BOB, 1, 0)


def ok(etag: str = "a.1", expires: int | None = 3600) -> Response:
    headers = Headers([("SIP-ETag", etag)])
    if expires is not None:
        headers.add("Expires", str(expires))
    return Response(200, "OK", headers)


def test_a_publication_keeps_its_entity_tag_and_dialog_like_identity() -> None:
    publication = Publication(BOB, 3600)
    first = publication.request(1, 0)
    assert first.headers.get("SIP-If-Match") is None
    assert publication.on_response(ok("e1"), now=100.0) is Outcome.DONE
    assert publication.refresh_at == 100.0 + 3600 - 60
    second = publication.request(0, 1)
    assert second.headers.get("SIP-If-Match") == "e1"
    assert second.headers.get("Call-ID") == first.headers.get("Call-ID")
    assert second.cseq()[0] == first.cseq()[0] + 1
    assert MessageSummary.parse(second.body) == MessageSummary(BOB, 0, 1)


def test_the_server_may_shorten_the_lifetime() -> None:
    publication = Publication(BOB, 3600)
    publication.request(1, 0)
    publication.on_response(ok(expires=100), now=0.0)
    assert publication.refresh_at == refresh_delay(100) == 80.0


def test_412_starts_over_without_the_entity_tag() -> None:
    publication = Publication(BOB, 3600)
    publication.request(1, 0)
    publication.on_response(ok("e1"), now=0.0)
    publication.request(2, 0)
    outcome = publication.on_response(Response(412, "Conditional Request Failed"), now=5.0)
    assert outcome is Outcome.RETRY_FRESH
    assert publication.etag is None
    assert publication.refresh_at is None
    assert publication.request(2, 0).headers.get("SIP-If-Match") is None


def test_423_retries_with_the_minimum_lifetime() -> None:
    publication = Publication(BOB, 60)
    publication.request(1, 0)
    too_brief = Response(423, "Interval Too Brief", Headers([("Min-Expires", "120")]))
    assert publication.on_response(too_brief, now=0.0) is Outcome.RETRY_LONGER
    assert publication.request(1, 0).headers.get("Expires") == "120"


@pytest.mark.parametrize(
    "response",
    [None, Response(403, "Forbidden"), Response(200, "OK"), Response(423, "Interval Too Brief")],
)
def test_failures_forget_the_publication(response: Response | None) -> None:
    publication = Publication(BOB, 3600, etag="old", refresh_at=10.0)
    publication.request(1, 0)
    assert publication.on_response(response, now=0.0) is Outcome.FAILED
    assert publication.etag is None
    assert publication.refresh_at is None


# ----- the durable record -----

SAVED = Publication(
    account=BOB, expires=3600, etag="e7", refresh_at=1_700_003_540.0,
    expires_at=1_700_003_600.0, cseq=4, call_id="c1@voicemail", from_tag="f1",
)  # fmt: skip


@pytest.mark.parametrize(
    "record",
    [
        MailboxRecord("lab.example", "bob", publication=SAVED),
        MailboxRecord("d-7", "u-42", address=("bob", "lab.example")),
        MailboxRecord("d-7", "u-42", ("bob", "lab.example"), SAVED),
        MailboxRecord(
            "lab.example",
            "bob",
            publication=Publication(BOB, 3600, None, None, None, 9, "c2", "f2"),
        ),
    ],
)
def test_record_round_trip(record: MailboxRecord) -> None:
    assert MailboxRecord.parse(record.serialize()) == record


@given(
    st.text(min_size=1),
    st.text(min_size=1),
    st.none() | st.tuples(st.text(), st.text()),
    st.none() | st.text(),
    st.floats(allow_nan=False, allow_infinity=False),
)
def test_record_round_trip_of_any_text(
    domain: str, user: str, address: tuple[str, str] | None, etag: str | None, t: float
) -> None:
    saved = Publication(f"sip:{user}@{domain}", 60, etag, t, t, 0, "c", "f")
    record = MailboxRecord(domain, user, address, saved)
    assert MailboxRecord.parse(record.serialize()) == record


def _packed(**changes: object) -> bytes:
    fields = msgpack.unpackb(MailboxRecord("lab.example", "bob", None, SAVED).serialize())
    fields.update(changes)
    return bytes(msgpack.packb(fields))


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (
            MailboxRecord("lab.example", "bob").serialize()[:-3],
            "MWI record is not msgpack: Unpack failed: incomplete input",
        ),
        (b"", "MWI record is not msgpack: Unpack failed: incomplete input"),
        (bytes(msgpack.packb([1, 2])), "not a version 1 MWI record"),
        (_packed(v=2), "not a version 1 MWI record"),
        (_packed(user=None), "MWI record user has the wrong type: None"),
        (_packed(domain=b"lab"), "MWI record domain has the wrong type: b'lab'"),
        (_packed(address=["bob"]), "MWI record address is not [user, domain]: ['bob']"),
        (_packed(publication={"account": BOB}), "MWI record without expires"),
        (
            _packed(
                publication={**msgpack.unpackb(_packed())["publication"], "expires_at": "soon"}
            ),
            "MWI record expires_at has the wrong type: 'soon'",
        ),
        (
            _packed(publication={**msgpack.unpackb(_packed())["publication"], "cseq": True}),
            "MWI record cseq has the wrong type: True",
        ),
    ],
)
def test_record_parse_errors(data: bytes, error: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(error)}$"):
        MailboxRecord.parse(data)


def test_saved_times_are_wall_clock_times() -> None:
    publication = Publication(BOB, 3600, cseq=3, call_id="c1", from_tag="f1")
    publication.request(1, 0)
    publication.on_response(ok("e1", expires=600), now=50.0)  # event loop time
    saved = publication.saved(wall_offset=1_700_000_000.0)
    assert saved == Publication(
        BOB, 3600, "e1", 1_700_000_050.0 + 540, 1_700_000_050.0 + 600, 4, "c1", "f1"
    )


def test_a_live_publication_is_restored_with_its_entity_tag() -> None:
    # Restarted 100 s after the record was written; the new loop's clock reads 7.
    wall_now = 1_700_000_000.0 + 100
    publication = Publication.restore(SAVED, now=7.0, wall_now=wall_now)
    assert publication.etag == "e7"
    assert publication.refresh_at == 7.0 + (SAVED.refresh_at or 0) - wall_now
    assert publication.expires_at == 7.0 + (SAVED.expires_at or 0) - wall_now
    request = publication.request(1, 0)
    assert request.headers.get("SIP-If-Match") == "e7"
    assert request.headers.get("Call-ID") == "c1@voicemail"
    assert request.headers.get("CSeq") == "5 PUBLISH"


def test_a_publication_whose_refresh_was_missed_is_refreshed_at_once() -> None:
    wall_now = (SAVED.refresh_at or 0) + 30  # past the refresh, before the expiry
    publication = Publication.restore(SAVED, now=7.0, wall_now=wall_now)
    assert publication.etag == "e7"
    assert publication.refresh_at == 7.0  # due now


@pytest.mark.parametrize(
    ("saved", "wall_now"),
    [
        (SAVED, SAVED.expires_at),  # expired while no worker ran
        (Publication(BOB, 3600, None, None, None, 4, "c1", "f1"), 0.0),  # had failed
    ],
)
def test_a_dead_publication_is_restored_without_entity_tag(
    saved: Publication, wall_now: float
) -> None:
    publication = Publication.restore(saved, now=7.0, wall_now=wall_now)
    assert (publication.etag, publication.refresh_at, publication.expires_at) == (None, None, None)
    assert publication.request(1, 0).headers.get("SIP-If-Match") is None

"""Where a request came from and where its responses go (RFC 3261 18.2.1, 18.2.2;
RFC 3581 rport), as the core's server transactions apply it.
"""

from __future__ import annotations

from media_worker.sip.address import Peer, Via
from media_worker.sip.message import Request
from media_worker.sip.numbers import parse_number


def stamp_via(request: Request, source: Peer) -> None:
    """RFC 3261 18.2.1 and RFC 3581: note where the request really came from."""
    top = request.headers.get("Via") or ""
    via = Via.parse(top)
    if via.host.strip("[]") != source.host:
        via = via.with_param("received", source.host)
    if via.param("rport") is not None:
        via = via.with_param("rport", str(source.port))
    vias = request.headers.get_all("Via")
    request.headers.remove("Via")
    for index, value in enumerate(vias):
        request.headers.add("Via", str(via) if index == 0 else value)


def response_destination(request: Request, source: Peer) -> Peer:
    """Where the responses to a stamped request go: its connection, else its top Via."""
    if source.reliable:
        return source
    via = Via.parse(request.headers.get("Via") or "")
    host = via.param("received") or via.host.strip("[]")
    rport = via.param("rport")
    port = parse_number(rport, "rport", 1, 65535) if rport else via.port or 5060
    return Peer("udp", host, port)

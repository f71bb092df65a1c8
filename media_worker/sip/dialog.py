"""UAS dialogs (RFC 3261 12): identity, route set, remote target, sequence numbers."""

from __future__ import annotations

from dataclasses import dataclass, field

from media_worker.sip.address import NameAddr, SipUri, Via
from media_worker.sip.errors import RemoteProtocolError
from media_worker.sip.headers import Headers
from media_worker.sip.message import Request

MAX_FORWARDS = "70"


@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str  # the To of the INVITE, with our tag added
    remote_uri: str  # the From of the INVITE
    remote_target: str  # Contact URI of the peer
    route_set: list[str] = field(default_factory=list)
    local_seq: int = 1
    remote_seq: int = 0

    @classmethod
    def from_invite(cls, invite: Request, local_tag: str, local_seq: int) -> Dialog:
        headers = invite.headers
        remote = NameAddr.parse(headers.get("From") or "")
        local = NameAddr.parse(headers.get("To") or "").with_tag(local_tag)
        contacts = headers.get_all("Contact")
        if not contacts:
            raise RemoteProtocolError("INVITE without Contact")
        target = NameAddr.parse(contacts[0]).uri
        SipUri.parse(target)  # must be a SIP URI we can send to
        route_set = headers.get_all("Record-Route")
        if route_set:  # our BYE goes there: refuse now what we could not send to later
            NameAddr.parse(route_set[0]).sip_uri()
        return cls(
            call_id=invite.call_id,
            local_tag=local_tag,
            remote_tag=remote.tag or "",
            local_uri=str(local),
            remote_uri=str(remote),
            remote_target=target,
            # A UAS keeps Record-Route in order (RFC 3261 12.1.1).
            route_set=route_set,
            local_seq=local_seq,
            remote_seq=invite.cseq()[0],
        )

    def check_request(self, request: Request) -> None:
        """RFC 3261 12.2.2: an in-dialog request must not go back in sequence."""
        seq, method = request.cseq()
        if method != "ACK" and seq <= self.remote_seq and method != "CANCEL":
            raise RemoteProtocolError(
                f"CSeq {seq} is not above the dialog's {self.remote_seq}", status=500
            )
        if method not in ("ACK", "CANCEL"):
            self.remote_seq = seq
        contacts = request.headers.get_all("Contact")
        if method == "INVITE" and contacts:  # a target refresh
            self.remote_target = NameAddr.parse(contacts[0]).uri

    def next_hop(self) -> SipUri:
        """First Route if there is a route set (loose routing), else the remote target."""
        if self.route_set:
            return NameAddr.parse(self.route_set[0]).sip_uri()
        return SipUri.parse(self.remote_target)

    def new_request(self, method: str, via: Via, extra: Headers | None = None) -> Request:
        self.local_seq += 1
        headers = Headers([("Via", str(via)), ("Max-Forwards", MAX_FORWARDS)])
        for route in self.route_set:
            headers.add("Route", route)
        headers.add("From", self.local_uri)
        headers.add("To", self.remote_uri)
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{self.local_seq} {method}")
        for name, value in extra or ():
            headers.add(name, value)
        return Request(method, self.remote_target, headers)

"""SDP (RFC 4566) parsing and serialization, and the worker's offer/answer (RFC 3264).

The worker only speaks G.711 (PCMU, PCMA) with RFC 4733 telephone-event; rtpengine in front
of it transcodes everything else. A description is kept as its lines, so that what we do
not interpret survives a round trip unchanged.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from media_worker.sip.errors import RemoteProtocolError
from media_worker.sip.numbers import is_number, parse_number


class SdpError(RemoteProtocolError):
    """An SDP body we cannot use; ``status`` is 400 (malformed) or 488 (unacceptable)."""


class Direction(enum.Enum):
    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    def reversed(self) -> Direction:
        """The direction that answers this one."""
        return {
            Direction.SENDONLY: Direction.RECVONLY,
            Direction.RECVONLY: Direction.SENDONLY,
        }.get(self, self)

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)


@dataclass(frozen=True)
class Codec:
    payload_type: int
    name: str  # as in rtpmap, e.g. "PCMU", "telephone-event"
    rate: int = 8000


PCMU = Codec(0, "PCMU")
PCMA = Codec(8, "PCMA")
TELEPHONE_EVENT = Codec(101, "telephone-event")
STATIC_CODECS = {0: PCMU, 8: PCMA}
SUPPORTED_AUDIO = ("PCMU", "PCMA")

Line = tuple[str, str]  # ("a", "rtpmap:0 PCMU/8000")
MAX_PAYLOAD_TYPE = 127
MAX_RATE = 1_000_000  # Hz; clock rates in use go to 90 kHz
MAX_PTIME = 1000  # ms


def _number(text: str, high: int, low: int = 0) -> int | None:
    """An ASCII number within bounds, or None (what we do not take is skipped)."""
    return int(text) if is_number(text) and low <= int(text) <= high else None


@dataclass
class MediaSection:
    kind: str
    port: int
    proto: str
    formats: list[str]
    lines: list[Line] = field(default_factory=list)  # the lines after m=

    def m_line(self) -> str:
        return f"{self.kind} {self.port} {self.proto} {' '.join(self.formats)}"

    def attributes(self, name: str) -> list[str]:
        """Values of ``a=name:value`` lines (``""`` for a flag attribute)."""
        found = []
        for kind, value in self.lines:
            if kind == "a":
                key, _, rest = value.partition(":")
                if key == name:
                    found.append(rest)
        return found

    @property
    def connection(self) -> str | None:
        for kind, value in self.lines:
            if kind == "c":
                return value
        return None

    @property
    def direction(self) -> Direction | None:
        for kind, value in self.lines:
            if kind == "a" and value in Direction._value2member_map_:
                return Direction(value)
        return None

    def codecs(self) -> list[Codec]:
        """Codecs in the section's order of preference (static types need no rtpmap)."""
        rtpmaps: dict[int, Codec] = {}
        for value in self.attributes("rtpmap"):
            pt_text, _, encoding = value.partition(" ")
            name, _, rest = encoding.strip().partition("/")
            pt, rate = (
                _number(pt_text, MAX_PAYLOAD_TYPE),
                _number(rest.partition("/")[0], MAX_RATE, 1),
            )
            if pt is not None and rate is not None:
                rtpmaps[pt] = Codec(pt, name, rate)
        codecs = []
        for fmt in self.formats:
            pt = _number(fmt, MAX_PAYLOAD_TYPE)
            if pt is None:
                continue
            codec = rtpmaps.get(pt) or STATIC_CODECS.get(pt)
            if codec is not None:
                codecs.append(codec)
        return codecs


@dataclass
class SessionDescription:
    lines: list[Line]  # session-level lines, v= first
    media: list[MediaSection] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes | str) -> SessionDescription:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        session: list[Line] = []
        media: list[MediaSection] = []
        for number, raw in enumerate(text.replace("\r\n", "\n").split("\n"), 1):
            line = raw.strip()
            if not line:
                continue
            kind, eq, value = line.partition("=")
            if not eq or len(kind) != 1 or not (kind.isascii() and kind.isalpha()):
                raise SdpError(f"SDP line {number} is not <type>=<value>: {line[:60]!r}")
            if kind == "m":
                media.append(_parse_m_line(value, number))
            elif media:
                media[-1].lines.append((kind, value))
            else:
                session.append((kind, value))
        if not session or session[0] != ("v", "0"):
            raise SdpError("SDP does not start with v=0")
        return cls(session, media)

    def serialize(self) -> bytes:
        out = [f"{kind}={value}" for kind, value in self.lines]
        for section in self.media:
            out.append(f"m={section.m_line()}")
            out.extend(f"{kind}={value}" for kind, value in section.lines)
        return ("\r\n".join(out) + "\r\n").encode("utf-8")

    def session_value(self, kind: str) -> str | None:
        for line_kind, value in self.lines:
            if line_kind == kind:
                return value
        return None

    def session_direction(self) -> Direction | None:
        for kind, value in self.lines:
            if kind == "a" and value in Direction._value2member_map_:
                return Direction(value)
        return None


def _parse_m_line(value: str, number: int) -> MediaSection:
    parts = value.split()
    if len(parts) < 4:
        raise SdpError(f"SDP line {number}: malformed m= line {value[:60]!r}")
    port_text, slash, count = parts[1].partition("/")

    def error(_: str) -> SdpError:
        return SdpError(f"SDP line {number}: malformed media port {parts[1][:40]!r}")

    port = parse_number(port_text, "media port", 0, 65535, error)
    if slash:
        parse_number(count, "port count", 1, 65535, error)
    return MediaSection(parts[0], port, parts[2], parts[3:])


def connection_address(value: str | None) -> str | None:
    """The address of a ``c=IN IP4 192.0.2.1`` value (TTL and count suffixes dropped)."""
    if value is None:
        return None
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError(f"malformed connection line {value!r}")
    return parts[2].partition("/")[0]


@dataclass(frozen=True)
class MediaParams:
    """What an offer/answer exchange settled for the audio stream."""

    remote_host: str | None  # None: the peer does not want to receive (hold)
    remote_port: int
    codec: Codec
    dtmf: Codec | None  # telephone-event, when both sides have it
    direction: Direction  # from our side: SENDONLY means we send only
    ptime: int = 20
    source_host: str | None = None  # the c= address, on hold too: where media comes from


@dataclass
class LocalMedia:
    """Our end of the stream, used to write offers and answers."""

    host: str
    port: int
    session_id: int
    version: int = 1
    preferences: tuple[str, ...] = SUPPORTED_AUDIO

    def _session_lines(self) -> list[Line]:
        family = "IP6" if ":" in self.host else "IP4"
        return [
            ("v", "0"),
            ("o", f"voicemail {self.session_id} {self.version} IN {family} {self.host}"),
            ("s", "voicemail"),
            ("c", f"IN {family} {self.host}"),
            ("t", "0 0"),
        ]

    def offer(self, direction: Direction = Direction.SENDRECV) -> SessionDescription:
        """An offer of every codec we take, for an INVITE that came without SDP."""
        codecs = [c for c in (PCMU, PCMA) if c.name in self.preferences]
        return SessionDescription(
            self._session_lines(), [self._section([*codecs, TELEPHONE_EVENT], direction)]
        )

    def _section(self, codecs: list[Codec], direction: Direction) -> MediaSection:
        lines: list[Line] = []
        for codec in codecs:
            lines.append(("a", f"rtpmap:{codec.payload_type} {codec.name}/{codec.rate}"))
            if codec.name == "telephone-event":
                lines.append(("a", f"fmtp:{codec.payload_type} 0-16"))
        lines += [("a", "ptime:20"), ("a", direction.value)]
        formats = [str(c.payload_type) for c in codecs]
        return MediaSection("audio", self.port, "RTP/AVP", formats, lines)

    def answer(self, offer: SessionDescription) -> tuple[SessionDescription, MediaParams]:
        """Answer ``offer``; raises SdpError(488) when no audio stream can be accepted."""
        params, chosen = negotiate(offer, self.preferences)
        sections = []
        for index, section in enumerate(offer.media):
            if index == chosen:
                codecs = [params.codec] + ([params.dtmf] if params.dtmf else [])
                sections.append(self._section(codecs, params.direction))
            else:  # RFC 3264 6: refuse the other streams with port 0, same format list
                sections.append(MediaSection(section.kind, 0, section.proto, section.formats))
        return SessionDescription(self._session_lines(), sections), params


def negotiate(
    remote: SessionDescription, preferences: tuple[str, ...] = SUPPORTED_AUDIO
) -> tuple[MediaParams, int]:
    """Settle the first usable audio stream of ``remote`` (offer or answer).

    Returns the parameters and the index of the chosen media section. The remote's codec
    order wins among the codecs we support (RFC 3264 6.1).
    """
    session_c = connection_address(remote.session_value("c"))
    session_dir = remote.session_direction() or Direction.SENDRECV
    refusal = "no audio stream in the SDP"
    for index, section in enumerate(remote.media):
        if section.kind != "audio" or section.port == 0:
            continue
        if section.proto.upper() not in ("RTP/AVP", "RTP/AVPF"):
            refusal = f"unsupported media transport {section.proto}"
            continue
        codecs = section.codecs()
        audio = [c for c in codecs if c.name.upper() in preferences and c.rate == 8000]
        if not audio:
            names = ", ".join(c.name for c in codecs) or "none"
            refusal = f"no common codec (offered: {names}; we take PCMU, PCMA)"
            continue
        dtmf = next(
            (c for c in codecs if c.name.lower() == "telephone-event" and c.rate == 8000), None
        )
        host = connection_address(section.connection) or session_c
        if host is None:
            raise SdpError("audio stream without a connection address (c=)")
        remote_dir = section.direction or session_dir
        if host in ("0.0.0.0", "::"):  # noqa: S104 - RFC 2543 hold, not a bind
            remote_dir = Direction.SENDONLY if remote_dir.sends else Direction.INACTIVE
        ptime_values = section.attributes("ptime")
        ptime = (_number(ptime_values[0].strip(), MAX_PTIME, 1) if ptime_values else None) or 20
        params = MediaParams(
            remote_host=host if remote_dir.receives else None,
            remote_port=section.port,
            codec=audio[0],
            dtmf=dtmf,
            direction=remote_dir.reversed(),
            ptime=ptime,
            source_host=host,
        )
        return params, index
    raise SdpError(refusal, status=488)

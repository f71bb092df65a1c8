"""SEMS voicemail email templates, read unchanged.

A template file is header lines (``subject:``, ``to:``, ``from:``, optional ``header:``
whose value may hold several header lines separated by a literal ``\\n``), an empty line,
then the body. ``%name%`` is replaced by a variable and ``%%`` is a literal ``%``; a
body line using ``%audio_url%`` is left out when there is no link to give. Every
variable is checked when the file is loaded, so an unknown one is a start-up error that
names the file and line, never a failed email.

Files are looked up as ``<did>_<lng>``, ``<did>``, ``default_<lng>``, ``default``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

# docs/design.md: the variables a template may use, plus the extra P-App-Param keys configured.
VARIABLES = frozenset(
    {"user", "sender", "from", "domain", "email", "uid", "did", "ts", "vmsg_length", "audio_url"}
)
# Empty when there is nothing to say (no HTTP API configured, a message not stored): a
# body line that uses one of these is then left out, so "Listen: %audio_url%" never
# reads "Listen: ".
OPTIONAL = frozenset({"audio_url"})
SUFFIX = ".template"
_FIELDS = ("subject", "to", "from", "header")
_HEADER_LINE = re.compile(r"([A-Za-z0-9-]+)\s*:\s*(.*)")


class TemplateError(ValueError):
    """A template that cannot be used; the message names the file and line."""

    def __init__(self, source: str, line: int, message: str) -> None:
        super().__init__(f"{source}:{line}: {message}")
        self.source = source
        self.line = line


@dataclass(frozen=True)
class Part:
    """One substitutable text: its pieces alternate literal, variable, literal, ..."""

    pieces: tuple[str, ...]

    def render(self, variables: Mapping[str, str]) -> str:
        out = []
        for index, piece in enumerate(self.pieces):
            out.append(variables.get(piece, "") if index % 2 else piece)
        return "".join(out)

    def render_lines(self, variables: Mapping[str, str], optional: frozenset[str]) -> str:
        """Like render, leaving out each line that uses an ``optional`` variable that is
        empty. Lines are the template's own: a newline inside a value starts none."""
        lines: list[list[str]] = [[]]
        dropped = [False]
        for index, piece in enumerate(self.pieces):
            if index % 2:
                value = variables.get(piece, "")
                dropped[-1] = dropped[-1] or (piece in optional and not value)
                lines[-1].append(value)
                continue
            first, *rest = piece.split("\n")
            lines[-1].append(first)
            for text in rest:
                lines.append([text])
                dropped.append(False)
        return "\n".join(
            "".join(line) for line, drop in zip(lines, dropped, strict=True) if not drop
        )

    @property
    def names(self) -> tuple[str, ...]:
        return self.pieces[1::2]


def _compile(text: str, source: str, line: int, allowed: frozenset[str]) -> Part:
    pieces: list[str] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "%":
            literal.append(char)
            i += 1
            continue
        if text.startswith("%%", i):
            literal.append("%")
            i += 2
            continue
        end = text.find("%", i + 1)
        newline = text.find("\n", i + 1)
        if end == -1 or (newline != -1 and newline < end):
            raise TemplateError(source, line + text.count("\n", 0, i), "unterminated %variable%")
        name = text[i + 1 : end]
        if name not in allowed:
            known = ", ".join(sorted(allowed))
            raise TemplateError(
                source, line + text.count("\n", 0, i), f"unknown variable %{name}% (known: {known})"
            )
        pieces += ["".join(literal), name]
        literal = []
        i = end + 1
    pieces.append("".join(literal))
    return Part(tuple(pieces))


@dataclass(frozen=True)
class EmailTemplate:
    source: str
    subject: Part
    to: Part
    sender: Part  # the template's "from:" line
    headers: tuple[Part, ...]
    body: Part

    def render(self, variables: Mapping[str, str]) -> RenderedEmail:
        def one_line(part: Part) -> str:
            # A variable must never start a new header line (header injection).
            return " ".join(part.render(variables).split())

        headers = []
        for part in self.headers:
            match = _HEADER_LINE.fullmatch(one_line(part))
            if match is not None:
                headers.append((match[1], match[2]))
        return RenderedEmail(
            subject=one_line(self.subject),
            to=one_line(self.to),
            sender=one_line(self.sender),
            headers=tuple(headers),
            body=self.body.render_lines(variables, OPTIONAL),
        )


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    to: str
    sender: str
    headers: tuple[tuple[str, str], ...]
    body: str


def parse_template(text: str, source: str, extra_variables: Iterable[str] = ()) -> EmailTemplate:
    allowed = VARIABLES | frozenset(extra_variables)
    lines = text.replace("\r\n", "\n").split("\n")
    fields: dict[str, tuple[str, int]] = {}
    header_values: list[tuple[str, int]] = []
    body_start = None
    for number, raw in enumerate(lines, 1):
        line = raw.strip(" \r")
        if not line:
            body_start = number
            break
        key, colon, value = line.partition(":")
        key = key.strip().lower()
        if not colon or key not in _FIELDS:
            raise TemplateError(
                source, number, f"expected subject:, to:, from: or header:, got {line[:40]!r}"
            )
        if key == "header":
            header_values.append((value, number))
        else:
            fields[key] = (value, number)
    if body_start is None:
        raise TemplateError(
            source, len(lines), "no empty line between the header lines and the body"
        )
    for key in ("subject", "to", "from"):
        if not fields.get(key, ("", 0))[0].strip():
            raise TemplateError(source, 1, f"missing or empty '{key}:' line")
    body = "\n".join(lines[body_start:])
    if not body.strip():
        raise TemplateError(source, body_start + 1, "empty body")

    def part(key: str) -> Part:
        value, number = fields[key]
        return _compile(value, source, number, allowed)

    headers = tuple(
        _compile(piece, source, number, allowed)
        for value, number in header_values
        for piece in value.split("\\n")  # a literal backslash-n separates header lines
    )
    return EmailTemplate(
        source=source,
        subject=part("subject"),
        to=part("to"),
        sender=part("from"),
        headers=headers,
        body=_compile(body, source, body_start + 1, allowed),
    )


def load_templates(
    directory: Path, extra_variables: Iterable[str] = ()
) -> dict[str, EmailTemplate]:
    """Every ``*.template`` in ``directory`` by name; ``default`` must be among them."""
    extras = tuple(extra_variables)
    templates = {
        path.name[: -len(SUFFIX)]: parse_template(path.read_text("utf-8"), str(path), extras)
        for path in sorted(directory.glob(f"*{SUFFIX}"))
    }
    if "default" not in templates:
        raise TemplateError(
            str(directory / f"default{SUFFIX}"), 0, "the default template is missing"
        )
    return templates


def select_template(
    templates: Mapping[str, EmailTemplate], did: str | None, language: str | None
) -> EmailTemplate:
    """SEMS' lookup order: <did>_<lng>, <did>, default_<lng>, default."""
    candidates = []
    if did and language:
        candidates.append(f"{did}_{language}")
    if did:
        candidates.append(did)
    if language:
        candidates.append(f"default_{language}")
    candidates.append("default")
    for name in candidates:
        if name in templates:
            return templates[name]
    raise KeyError("default")

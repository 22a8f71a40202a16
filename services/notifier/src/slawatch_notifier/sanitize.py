"""Event text made safe to show: one line, no control characters, inert in markup. Pure.

Every string a notification takes from an event (a ticket's title, key,
customer, service, group, an assignee's name) is untrusted: a line break in it
could start a mail header or a line that reads as a message of its own, and
markup in it could become a link, a mention or a heading. Templates make each
such value one line (``one_line``); every channel then cleans again what it
sends, because stored content may have been rendered by an earlier release:

- mail headers: ``one_line``, clipped (``clip``), RFC 2047-encoded when not
  ASCII (``channels/email.py``);
- chat markdown (DingTalk, WeCom): ``markdown_text`` per line;
- plain-text payloads: ``printable_lines`` (Feishu post text, Slack's section
  before its own ``&<>`` escape) or ``one_line`` (titles, Slack's header, SMS).

Control characters are the Unicode category Cc (C0, DEL, C1, so NEL U+0085)
and the line and paragraph separators U+2028 / U+2029. Those that are
whitespace (tab, CR, LF, VT, FF, the information separators, NEL, U+2028,
U+2029) become a space, the others are dropped. Each function returns its
argument unchanged, without copying, when it is already clean (the common case).
"""

from __future__ import annotations

import re

ELLIPSIS = "…"
SUBJECT_MAX_CHARS = 200
"""The most characters of a subject as a mail header or a chat title; longer ends in "…"."""

_CONTROLS = [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]
_SPACING = {code for code in _CONTROLS if chr(code).isspace()}
_DROP = {code: None for code in _CONTROLS if code not in _SPACING}
"""``str.translate`` table: controls that are not whitespace go (``split`` does the rest)."""
_SPACE_OR_DROP = {code: (" " if code in _SPACING else None) for code in _CONTROLS}
_SPACE_OR_DROP_BUT_NEWLINE = {
    code: value for code, value in _SPACE_OR_DROP.items() if code != ord("\n")
}

_MARKDOWN_ESCAPED = "\\`*_{}[]()|~&"
_MARKDOWN = str.maketrans(
    {char: "\\" + char for char in _MARKDOWN_ESCAPED}
    # Not backslash-escaped but replaced by their full-width forms: "@" so no text
    # is an @-mention, "<" and ">" so none is a tag (``<@userid>``, ``<font>``,
    # ``<a href>``) even where a renderer passes HTML and ignores backslashes.
    | {"@": "\uff20", "<": "\uff1c", ">": "\uff1e"}
)
_MARKDOWN_SPECIAL = frozenset(_MARKDOWN_ESCAPED + "@<>")
_BLOCK_START = re.compile(r"[ \t]*(?:[#+\-=]|[0-9]+\.)")
"""What starts a heading, a list item or a setext underline at the start of a line."""
_URL = re.compile(r"https?://[A-Za-z0-9\-._:/?#=%+,;$]+")
"""A bare URL made of characters that form no markdown; kept as is so links stay usable."""


def one_line(text: str) -> str:
    """``text`` as one line: controls dropped (whitespace ones as a space), every run of
    whitespace one space, none at either end."""
    if (
        text.isascii()
        and text.isprintable()
        and "  " not in text
        and text[:1] != " "
        and text[-1:] != " "
    ):
        return text
    return " ".join(text.translate(_DROP).split())


def printable(text: str) -> str:
    """``text`` without control characters (whitespace ones become a space), otherwise
    as it is: for a line whose spacing matters."""
    return text if text.isprintable() else text.translate(_SPACE_OR_DROP)


def printable_lines(text: str) -> str:
    """``text`` without control characters but its ``\\n`` line breaks."""
    return text if text.isprintable() else text.translate(_SPACE_OR_DROP_BUT_NEWLINE)


def clip(text: str, limit: int) -> str:
    """``text`` if it has at most ``limit`` characters, else its start and "…" in ``limit``."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + ELLIPSIS


def header_value(text: str, limit: int | None = None) -> str:
    """A header's or title's value from untrusted text: one line, at most ``limit`` characters."""
    value = one_line(text)
    return value if limit is None else clip(value, limit)


def markdown_text(line: str) -> str:
    """``line`` (no line breaks) as markdown that shows it literally and forms nothing.

    Backslash-escaped: ``\\ ` * _ { } [ ] ( ) | ~ &`` anywhere (no link, image,
    code, emphasis, strikethrough, table or character reference can form) and
    at the start of the line ``#``, ``+``, ``-``, ``=`` and the ``.`` of ``1.``
    (no heading, list or underline: elsewhere these form nothing and stay as they
    are, so ``OPS-42`` reads as it is). "@", "<" and ">" become their full-width
    forms (no mention, no HTML); control characters go. A bare ``http(s)://`` URL
    is kept as it is, so a link to acknowledge stays usable; it shows its own
    address, so it cannot disguise one.
    """
    line = printable(line)
    if _MARKDOWN_SPECIAL.intersection(line):
        line = _escape_inline(line)
    start = _BLOCK_START.match(line)
    if start is None:
        return line
    cut = start.end() - 1
    return f"{line[:cut]}\\{line[cut:]}"


def _escape_inline(line: str) -> str:
    if "://" not in line:
        return line.translate(_MARKDOWN)
    pieces: list[str] = []
    done = 0
    for url in _URL.finditer(line):
        pieces += (line[done : url.start()].translate(_MARKDOWN), url.group())
        done = url.end()
    pieces.append(line[done:].translate(_MARKDOWN))
    return "".join(pieces)


def trim_escape(text: str) -> str:
    """``text`` cut short after markdown escaping: without a last backslash left alone."""
    trailing = len(text) - len(text.rstrip("\\"))
    return text[:-1] if trailing % 2 else text

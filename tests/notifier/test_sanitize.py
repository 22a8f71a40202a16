"""Sanitising event text: one line, no control characters, inert in markdown (pure)."""

from __future__ import annotations

import pytest
from markdown_it import MarkdownIt

from slawatch_notifier.sanitize import (
    clip,
    header_value,
    markdown_text,
    one_line,
    printable,
    printable_lines,
    trim_escape,
)

CONTROLS = [*map(chr, [*range(0x20), *range(0x7F, 0xA0)]), "\u2028", "\u2029"]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("x\nBcc: y", "x Bcc: y"),
        ("x\r\nReply-To : attacker@evil.example", "x Reply-To : attacker@evil.example"),
        ("a\x00b\x1bc\x7fd\x9fe", "abcde"),  # controls that are not spacing go
        ("a\tb\x0bc\x0cd\x1ce\x85f\u2028g\u2029h", "a b c d e f g h"),  # spacing ones: a space
        ("  many   spaces\u3000and\xa0more  ", "many spaces and more"),
        ("核心交换机\r\n宕机", "核心交换机 宕机"),
        ("\r\n\x00 ", ""),
    ],
)
def test_one_line(text: str, line: str) -> None:
    assert one_line(text) == line


def test_clean_text_is_returned_as_it_is() -> None:
    for text in ("[slawatch] SLA breach: P2 bench:T-1", "核心交换机宕机", ""):
        assert one_line(text) == text
        assert printable(text) is text
        assert printable_lines(text) is text
    plain = "[slawatch] SLA breach: P2 bench:T-1"
    assert one_line(plain) is plain  # the fast path copies nothing
    assert markdown_text("SLA breach: P2 OPS-42 2026-11-26 00:30:00 UTC.") == (
        "SLA breach: P2 OPS-42 2026-11-26 00:30:00 UTC."
    )


def test_no_control_character_survives() -> None:
    text = "a".join(CONTROLS)
    for cleaned in (one_line(text), printable(text), header_value(text, 500), markdown_text(text)):
        assert not [char for char in cleaned if char in CONTROLS]
    assert [char for char in printable_lines(text) if char in CONTROLS] == ["\n"]


def test_printable_keeps_spacing_and_printable_lines_keeps_line_breaks() -> None:
    assert printable("Ticket:   OPS-42\x00\t!") == "Ticket:   OPS-42 !"
    assert printable_lines("a\r\nb\u2028c\n\nd") == "a \nb c\n\nd"


def test_clip_and_header_value() -> None:
    assert clip("abcdef", 6) == "abcdef"
    assert clip("abcdefg", 6) == "abcde…"
    assert header_value("x\r\n" + "y" * 300, 200) == "x " + "y" * 197 + "…"
    assert len(header_value("x" * 10_000, 200)) == 200
    assert header_value("x\ny") == "x y"


@pytest.mark.parametrize(
    ("line", "escaped"),
    [
        ("[click](http://evil.example)", "\\[click\\]\\(http://evil.example\\)"),
        ("![i](http://e.example/i.png)", "!\\[i\\]\\(http://e.example/i.png\\)"),
        ("<@all> @13800000000", "＜＠all＞ ＠13800000000"),
        ('<font color="warning">x</font>', '＜font color="warning"＞x＜/font＞'),
        ("**b** _i_ ~~s~~ `c`", "\\*\\*b\\*\\* \\_i\\_ \\~\\~s\\~\\~ \\`c\\`"),
        ("a | b {x} \\ &amp;", "a \\| b \\{x\\} \\\\ \\&amp;"),
        ("# heading", "\\# heading"),
        ("  ## heading", "  \\## heading"),
        ("- item", "\\- item"),
        ("+ item", "\\+ item"),
        ("1. item", "1\\. item"),
        ("12) item", "12\\) item"),
        ("===", "\\==="),
        ("> quote", "＞ quote"),
        ("OPS-42 at 2026-11-26 v1.2 # not a heading", "OPS-42 at 2026-11-26 v1.2 # not a heading"),
        (
            "Ack: https://slawatch.example.com/v1/acks/eyJj_x-y.c2ln",
            "Ack: https://slawatch.example.com/v1/acks/eyJj_x-y.c2ln",
        ),
        ("(see http://a.example/x_y) [x]", "\\(see http://a.example/x_y\\) \\[x\\]"),
        ("http://a.example/<@all>", "http://a.example/＜＠all＞"),
    ],
)
def test_markdown_text(line: str, escaped: str) -> None:
    assert markdown_text(line) == escaped


def test_markdown_text_renders_back_to_the_text_in_commonmark() -> None:
    markdown = MarkdownIt("commonmark").enable(["strikethrough", "table"])
    line = "[a](http://e.example) **b** _c_ ~~d~~ `e` \\ | {f} ![g](h) # i"
    assert markdown.render(markdown_text(line)) == f"<p>{line}</p>\n"
    assert markdown.render(markdown_text("# heading")) == "<p># heading</p>\n"
    assert markdown.render(markdown_text("1. one")) == "<p>1. one</p>\n"


def test_trim_escape_drops_a_lone_last_backslash() -> None:
    assert trim_escape("a\\") == "a"
    assert trim_escape("a\\\\") == "a\\\\"
    assert trim_escape("a\\\\\\") == "a\\\\"
    assert trim_escape("a") == "a"

"""Messages: one table per language, all with the same keys and placeholders (pure)."""

from __future__ import annotations

import copy

import pytest

from notifier.factories import CONFIG, ESCALATING
from slawatch_common.runtime import ConfigError
from slawatch_notifier.config import parse_config
from slawatch_notifier.messages import (
    CHINESE,
    DEFAULT_LOCALE,
    ENGLISH,
    LANGUAGES,
    Language,
    language,
    placeholders,
)

OTHERS = [lang for lang in LANGUAGES.values() if lang is not ENGLISH]


def test_zh_cn_and_en_are_the_languages_and_en_the_default() -> None:
    assert set(LANGUAGES) == {"zh-CN", "en"}
    assert language(DEFAULT_LOCALE) is ENGLISH
    assert language("zh-CN") is CHINESE


@pytest.mark.parametrize("other", OTHERS, ids=lambda lang: lang.locale)
def test_every_table_has_the_english_keys(other: Language) -> None:
    assert sorted(set(ENGLISH.messages) - set(other.messages)) == []  # missing
    assert sorted(set(other.messages) - set(ENGLISH.messages)) == []  # unknown


@pytest.mark.parametrize("other", OTHERS, ids=lambda lang: lang.locale)
def test_every_message_fills_in_the_same_placeholders(other: Language) -> None:
    differ = {
        key: (sorted(placeholders(text)), sorted(placeholders(other.messages[key])))
        for key, text in ENGLISH.messages.items()
        if placeholders(text) != placeholders(other.messages.get(key, ""))
    }
    assert differ == {}


def test_placeholders_are_the_names_a_template_fills_in() -> None:
    assert placeholders("{used} of {target} ({percent}%)") == {"used", "target", "percent"}
    assert placeholders("no fields") == frozenset()


def test_no_locale_or_an_unknown_one_is_english() -> None:
    assert language(None) is ENGLISH
    assert language("fr") is ENGLISH  # a row a newer release wrote


def test_a_message_is_filled_in_and_an_unknown_key_is_an_error() -> None:
    assert CHINESE.text("greeting.named", name="李伟") == "李伟，您好："
    with pytest.raises(KeyError):
        ENGLISH.text("no.such.key")


def test_the_notifier_locale_defaults_to_en_and_is_validated_by_path() -> None:
    assert parse_config(CONFIG).locale == "en"
    section = copy.deepcopy(ESCALATING)
    section["locale"] = "zh-CN"
    section["groups"]["l2"]["locale"] = "en"
    config = parse_config(section)
    assert (config.locale, config.groups["l2"].locale) == ("zh-CN", "en")
    section["locale"] = "zh"
    section["groups"]["l2"]["locale"] = "de"
    with pytest.raises(ConfigError) as caught:
        parse_config(section)
    message = str(caught.value)
    assert "notifier.locale: Value error, unknown locale 'zh' (locales: en, zh-CN)" in message
    assert "notifier.groups.l2.locale:" in message

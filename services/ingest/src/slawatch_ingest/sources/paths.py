"""Paths into a webhook body: a JSON pointer (``/a/0/b``) or a JSONPath (``$.a[0].b``).

Configuration names a body's fields with either; ``find`` evaluates one. A
pointer is RFC 6901 (``jsonpointer``); anything starting with ``$`` is a
JSONPath (``jsonpath-ng``, with its filter extensions), of which the first
match counts. Compiled paths are cached: configurations are small and fixed.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jsonpath_ng import JSONPath
from jsonpath_ng.exceptions import JSONPathError
from jsonpath_ng.ext.parser import parse as parse_jsonpath
from jsonpointer import JsonPointer, JsonPointerException


class PathSyntaxError(ValueError):
    """Neither a JSON pointer nor a JSONPath; the message says why."""


def check_path(text: str) -> str:
    """``text`` if it is a valid pointer or JSONPath, else ``PathSyntaxError`` (for validators)."""
    _compiled(text)
    return text


def find(document: Any, path: str) -> Any | None:
    """The value at ``path`` in ``document``, or ``None`` when there is none."""
    compiled = _compiled(path)
    if isinstance(compiled, JsonPointer):
        return compiled.resolve(document, None)
    matches = compiled.find(document)
    return matches[0].value if matches else None


def mapping_at(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else an empty one: for optional nested objects."""
    return value if isinstance(value, Mapping) else {}


@lru_cache(maxsize=512)
def _compiled(text: str) -> JsonPointer | JSONPath:
    if text.startswith("/"):
        try:
            return JsonPointer(text)
        except JsonPointerException as exc:
            raise PathSyntaxError(f"{text!r} is not a JSON pointer: {exc}") from exc
    if text.startswith("$"):
        try:
            return parse_jsonpath(text)
        except (JSONPathError, Exception) as exc:  # the parser raises bare Exceptions too
            raise PathSyntaxError(f"{text!r} is not a JSONPath: {exc}") from exc
    raise PathSyntaxError(f"{text!r}: a path is a JSON pointer (/a/b) or a JSONPath ($.a.b)")

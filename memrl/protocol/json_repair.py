"""Lenient JSON: the one JSON value of a model completion, recovered only where the reading is unambiguous.

Recovery (sets `recovered=True`): a ```json fence, prose before/after the JSON value, trailing commas,
single-quoted strings, and up to two missing closing brackets at the very end (a truncated generation). Two
different JSON values in one completion are ambiguous and fail. Never raises on model output.
"""

from __future__ import annotations

import json
import re
from typing import Any

_MAX_STARTS = 64  # JSON start positions tried per completion (bounds the work on adversarial text)
_MAX_MISSING_CLOSERS = 2
_DECODER = json.JSONDecoder()
_FENCE = re.compile(r"```[ \t]*(?:json|JSON|javascript|js)?[ \t]*\r?\n?(.*?)```", re.DOTALL)
_JSON_START = re.compile(r"[\[{]")
_OPEN_FENCE = re.compile(r"```[ \t]*(?:json|JSON|javascript|js)?[ \t]*\r?\n(.*)$", re.DOTALL)


def _repair(text: str, start: int) -> tuple[str | None, int]:
    """Rewrite the bracketed value starting at `start` into strict JSON.

    Converts single-quoted strings to double-quoted, drops trailing commas, stops at the bracket that closes
    the value (so trailing prose is ignored) and appends up to two missing closers at the end of the text.
    Returns (repaired text or None, index just after the value's span).
    """
    out: list[str] = []
    stack: list[str] = []
    quote: str | None = None  # the quote character of the string being copied
    i, n = start, len(text)
    while i < n:
        ch = text[i]
        if quote is not None:
            if ch == "\\" and i + 1 < n:
                nxt = text[i + 1]
                if quote == "'" and nxt == "'":
                    out.append("'")  # \' is not a JSON escape
                else:
                    out.append(ch + nxt)
                i += 2
                continue
            if ch == quote:
                out.append('"')
                quote = None
            elif ch == '"':  # a double quote inside a single-quoted string
                out.append('\\"')
            elif ch == "\n":
                out.append("\\n")
            else:
                out.append(ch)
            i += 1
            continue
        if ch in "\"'":
            quote = ch
            out.append('"')
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
            out.append(ch)
        elif ch in "}]":
            if not stack or stack[-1] != ch:
                return None, i + 1
            stack.pop()
            _drop_trailing_comma(out)
            out.append(ch)
            if not stack:
                return "".join(out), i + 1
        else:
            out.append(ch)
        i += 1
    if quote is not None or not stack or len(stack) > _MAX_MISSING_CLOSERS:
        return None, n
    _drop_trailing_comma(out)
    out.extend(reversed(stack))
    return "".join(out), n


def _drop_trailing_comma(out: list[str]) -> None:
    j = len(out) - 1
    while j >= 0 and out[j].isspace():
        j -= 1
    if j >= 0 and out[j] == ",":
        del out[j]


def _rank(obj: Any) -> int:
    if isinstance(obj, dict):
        return 2
    if isinstance(obj, list) and obj and all(isinstance(x, dict) for x in obj):
        return 1
    return 0


def _extract(body: str) -> tuple[Any, bool, str | None]:
    """(value, recovered, error) for one piece of text; value is a dict or list, or None with an error."""
    stripped = body.strip()
    try:
        value = json.loads(stripped)
        if isinstance(value, (dict, list)):
            return value, False, None
    except (ValueError, RecursionError):
        pass
    candidates: list[Any] = []
    first_error: str | None = None
    i, tries = 0, 0
    while tries < _MAX_STARTS:
        m = _JSON_START.search(body, i)
        if m is None:
            break
        s, tries = m.start(), tries + 1
        try:
            value, end = _DECODER.raw_decode(body, s)
            candidates.append(value)
            i = end
            continue
        except ValueError as e:
            first_error = first_error or f"invalid JSON: {e}"
        except RecursionError:
            first_error = first_error or "invalid JSON: nested too deeply"
        repaired, end = _repair(body, s)
        if repaired is not None:
            try:
                candidates.append(json.loads(repaired))
                i = end
                continue
            except (ValueError, RecursionError):
                pass
        i = max(end, s + 1)  # skip the broken value's whole span: never parse a fragment of it
    candidates = [c for c in candidates if isinstance(c, (dict, list))]
    if not candidates:
        return None, False, first_error or "output has no JSON"
    best = max(_rank(c) for c in candidates)
    top = [c for c in candidates if _rank(c) == best]
    if any(c != top[0] for c in top[1:]):
        return None, False, f"ambiguous: {len(top)} different JSON values in the output"
    return top[0], True, None


def parse_json_lenient(text: Any) -> tuple[Any, bool, str | None]:
    """Parse a completion's JSON value (dict or list): (value, recovered, error); never raises."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if not text.strip():
        return None, False, "empty output"
    fenced = _FENCE.findall(text) or _OPEN_FENCE.findall(text)
    if fenced:
        values = []
        for block in fenced:
            value, _, _ = _extract(block)
            if value is not None:
                values.append(value)
        if values:
            if any(v != values[0] for v in values[1:]):
                return None, False, f"ambiguous: {len(values)} fenced JSON blocks differ"
            return values[0], True, None
    return _extract(text)

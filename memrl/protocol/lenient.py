"""Lenient answer extraction for evaluation: score what a model answers, count the format separately.

The strict formats (`**Answer:** <answer>` for memory_r1 / compact, a JSON object for memory_t1) stay what the
rewards shape towards and what `parse_ok` / `format_failures.answers_unparsed` report. A real instruct model
that was never trained on them (SmolLM2-135M-Instruct answers "Caroline went to the LGBTQ support group." with
no marker) would otherwise score 0 on every question, which measures the format, not the answer. With
`answer_extraction=lenient` (the default) evaluation scores, in this order:

1. the strict parse's answer, when the completion follows the format  (rule "format");
2. else the text after the first line-initial answer label: "Answer:", "**Answer**:", "Final answer:",
   "The answer is:", "The answer to the question is:", "A:" (case-insensitive, bold/markdown stripped; a
   label alone on its line takes the next non-empty line)                 (rule "label");
3. else the JSON "answer" value of a memory_t1-style object, if one parses (rule "json");
4. else the first non-empty line that is not a header ending in ":" (unless only headers exist), list
   markers ("1.", "-") removed, cut at its first sentence end (". ", "! ", "? "), with a leading
   "The answer is" / "Answer is", leading bracketed ids ("[1] ") and surrounding quotes, bullets and bold
   removed                                                               (rule "first_sentence");
5. nothing (an empty completion): no answer, scored 0                     (rule None).

The extracted answer is capped at 64 words. `answer_extraction=strict` scores only rule 1 (the old behaviour).
Every record in predictions.jsonl keeps the raw completion (`raw_completion`), the strict result (`parse_ok`,
`parse_error`) and the rule used (`answer_rule`). Which modes are scored leniently is the mode's to say
(`AnswerMode.lenient`, `memrl.protocol.modes.scored_answer`).
"""

from __future__ import annotations

import re

from memrl.protocol.json_repair import parse_json_lenient

RULES = ("format", "label", "json", "first_sentence")
EXTRACTION_MODES = ("lenient", "strict")
MAX_WORDS = 64

_ANSWER_WORDS = (r"(?:the[ \t]+)?(?:final[ \t]+|short[ \t]+)?answer(?:[ \t]+to[ \t]+(?:the|this|your)[ \t]+question)?"
                 r"(?:[ \t]+(?:is|would[ \t]+be))?")
_LABEL = re.compile(r"^[ \t>*_#-]*(?:" + _ANSWER_WORDS + r"|a)[ \t]*[*_]*[ \t]*[:：][*_ \t]*(.*)$",
                    re.IGNORECASE | re.MULTILINE)
_LEAD = re.compile(r"^" + _ANSWER_WORDS.replace("(?:[ \\t]+(?:is|would[ \\t]+be))?", "[ \\t]+(?:is|would[ \\t]+be)")
                   + r"[ \t]*[:：]?[ \t]*", re.IGNORECASE)
_IDS = re.compile(r"^(?:\[\s*[\w-]+\s*\][\s,;]*)+(?=\S)")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[A-Z0-9\"'(\[])")
_LIST_MARK = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*•])\s+")
_STRIP = " \t\"'`*_-•>#"


def _clean(s: str) -> str:
    s = s.strip().strip(_STRIP).strip()
    s = _LEAD.sub("", s).strip().strip(_STRIP).strip()
    s = _IDS.sub("", s).strip()  # "[1] 2023-08-23": selected ids before the answer are not the answer
    words = s.split()
    if len(words) > MAX_WORDS:
        s = " ".join(words[:MAX_WORDS])
    return s


def _first_sentence(text: str) -> str:
    lines = [_clean(_LIST_MARK.sub("", ln)) for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    # A header line ("Caroline:", "Memories:") introduces the answer: skip it when something follows.
    content = [ln for ln in lines if not ln.endswith((":", "："))] or lines
    for line in content:
        return _clean(_SENTENCE_END.split(line, maxsplit=1)[0])
    return ""


def lenient_answer(raw: str | None, strict_ok: bool = False, strict_answer: str | None = None) -> tuple[str | None, str | None]:
    """(answer, rule) by the documented rule order; (None, None) when there is nothing to score."""
    if strict_ok and strict_answer is not None and str(strict_answer).strip():
        return str(strict_answer), "format"
    if not isinstance(raw, str) or not raw.strip():
        return None, None
    labels = [m for m in _LABEL.finditer(raw)]
    for m in labels:  # the first: small models repeat themselves until max_new_tokens cuts the last one
        after = m.group(1).strip() or next((ln for ln in raw[m.end():].splitlines() if ln.strip()), "")
        ans = _first_sentence(after) if after else ""
        if ans:
            return ans, "label"
    if "{" in raw:
        value, _, _ = parse_json_lenient(raw)
        if isinstance(value, dict) and value.get("answer") not in (None, ""):
            v = value["answer"]
            ans = _clean(" ".join(map(str, v)) if isinstance(v, list) else str(v))
            if ans:
                return ans, "json"
    ans = _first_sentence(raw)
    return (ans, "first_sentence") if ans else (None, None)


__all__ = ["EXTRACTION_MODES", "RULES", "lenient_answer"]

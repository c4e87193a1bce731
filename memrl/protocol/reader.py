"""The extractive reader: the answer a memory (or turn) gives to a question, without a model.

`extract_answer(question, text)` keeps the words of `text` that are neither stopwords nor (stemmed) words of
the question. It is the BM25 answerers' reader and the select answer mode's frozen reader: the environment
precomputes what it answers from each candidate (`candidate_answers`, which the select reward looks up) and the
LLM answerer in select mode reads the memory its policy chose with it, so the two cannot disagree. It lives in
the protocol layer because both the environments and the policies use it.
"""

from __future__ import annotations

import re

from memrl.memory.bank import STOPWORDS
from memrl.memory.index import text_tokens

_WORD = re.compile(r"[^\W_][\w'’\-]*")
# Auxiliaries bm25s's stopword list keeps; an extracted answer is better without them ("has Rex" -> "Rex").
_ANSWER_STOPWORDS = STOPWORDS | {"am", "been", "did", "do", "does", "had", "has", "have", "were", "named", "called"}


def strip_speaker(text: str, speaker: str | None) -> str:
    """`text` without a leading "<speaker>: " (memories written from turns carry it)."""
    return text[len(speaker) + 2:] if speaker and text.startswith(f"{speaker}: ") else text


def extract_answer(question: str, text: str, speaker: str | None = None) -> str:
    """The words of `text` that are neither stopwords nor (stemmed) words of the question."""
    text = strip_speaker(text, speaker)
    q = set(text_tokens(question))
    keep = []
    for w in _WORD.findall(text):
        lw = w.lower().strip("'’-")
        if not lw or lw in _ANSWER_STOPWORDS:
            continue
        toks = text_tokens(w)
        if toks and any(t in q for t in toks):
            continue
        if toks or lw.isdigit():
            keep.append(w.strip("'’-"))
    return " ".join(keep) if keep else text.strip()

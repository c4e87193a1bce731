"""Mem0's CORRECT/WRONG LLM judge (the J metric of Mem0 and Memory-R1) on any generation backend.

- Prompt: Mem0's ACCURACY_PROMPT, verbatim (`prompts.PROMPTS["mem0_judge"]`), temperature 0.
- Output: 1.0 (CORRECT), 0.0 (WRONG) or None when the judge's reply has no parsable label. A None is a
  *judge format failure*: counted in `stats`, logged, excluded by callers from J, never an exception.
- Cache: JSONL, one line per judged (prompt version, question, gold, answer), appended with a single
  O_APPEND write so concurrent judges cannot interleave lines; a torn last line (a crash mid-write) is
  skipped on load. Re-scoring the same answers costs no generation at all.

Parsing follows Mem0's intent ("return the label ... in a json format with the key as 'label'"), a bit more
forgiving than Mem0's `json.loads(extract_json(...))["label"]`: the last JSON object with a "label" key wins
(case-insensitive value); failing that, a reply whose final word is CORRECT or WRONG counts. A reply with
both words and no JSON label is a failure, as Mem0's prompt warns.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memrl.protocol.generation import GenerationBackend, SamplingParams
from memrl.protocol.prompts import PROMPTS

log = logging.getLogger(__name__)

LABEL_SCORES = {"CORRECT": 1.0, "WRONG": 0.0}
_JSON_OBJECT = re.compile(r"\{[^{}]*\}")
_LAST_WORD = re.compile(r"([A-Za-z]+)[\W_]*$")


def parse_judge_label(text: str) -> str | None:
    """'CORRECT' | 'WRONG' | None from a judge reply."""
    label = None
    for m in _JSON_OBJECT.finditer(text):
        try:
            obj = json.loads(m.group(0))
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            for k, v in obj.items():
                if k.strip().lower() == "label" and isinstance(v, str) and v.strip().upper() in LABEL_SCORES:
                    label = v.strip().upper()
    if label is not None:
        return label
    m = _LAST_WORD.search(text.strip())
    if m and m.group(1) in LABEL_SCORES:
        other = "WRONG" if m.group(1) == "CORRECT" else "CORRECT"
        return None if re.search(rf"\b{other}\b", text) else m.group(1)
    return None


class LLMJudge:
    """`judge(questions, golds, answers) -> list[float | None]` with a persistent cache.

    `prompt_version` is "<template name>@<version>"; asking for a version that is not the one in
    `prompts.PROMPTS` is an error, so a cache or a result can never mix two wordings silently.
    """

    def __init__(
        self,
        backend: GenerationBackend | None,
        prompt_version: str = "mem0_judge@1",
        cache_path: str | os.PathLike | None = None,
        max_tokens: int = 128,
    ):
        if backend is None:
            raise ValueError(
                "LLMJudge needs a generation backend, e.g. memrl.policies.backends.make_backend('transformers:PATH'); "
                "got None. (J cannot be computed without a judge model; use F1/EM instead.)"
            )
        name, sep, version = prompt_version.partition("@")
        if not sep or name not in PROMPTS:
            raise ValueError(f"prompt_version {prompt_version!r}: expected '<name>@<version>' with name in {sorted(PROMPTS)}")
        if PROMPTS[name].version != version:
            raise ValueError(
                f"prompt_version {prompt_version!r}: this memrl has {name}@{PROMPTS[name].version}; "
                "old prompt wordings are not kept, so results judged with another version are not comparable"
            )
        self.backend = backend
        self.template = PROMPTS[name]
        self.prompt_version = prompt_version
        self.params = SamplingParams(n=1, temperature=0.0, max_tokens=max_tokens)
        self.cache_path = Path(cache_path) if cache_path is not None else None
        self.cache: dict[str, dict[str, Any]] = {}
        self.stats = {"judged": 0, "generated": 0, "cache_hits": 0, "format_failures": 0}
        if self.cache_path is not None and self.cache_path.exists():
            self._load_cache()

    def key(self, question: str, gold: str, answer: str) -> str:
        blob = json.dumps([self.prompt_version, question, gold, answer], ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    def judge(self, questions: Sequence[str], golds: Sequence[Any], answers: Sequence[Any]) -> list[float | None]:
        if not len(questions) == len(golds) == len(answers):
            raise ValueError(
                f"LLMJudge.judge: lengths differ (questions {len(questions)}, golds {len(golds)}, answers {len(answers)})"
            )
        items = [(str(q), str(g), str(a)) for q, g, a in zip(questions, golds, answers)]
        keys = [self.key(*it) for it in items]
        todo: dict[str, tuple[str, str, str]] = {}
        for k, it in zip(keys, items):
            if k not in self.cache and k not in todo:
                todo[k] = it
        self.stats["cache_hits"] += sum(k in self.cache for k in keys)
        if todo:
            prompts = [self.template.render(question=q, gold_answer=g, generated_answer=a) for q, g, a in todo.values()]
            outs = self.backend.generate(prompts, self.params)
            self.stats["generated"] += len(prompts)
            records = []
            for (k, (q, g, a)), gens in zip(todo.items(), outs):
                raw = gens[0].text
                label = parse_judge_label(raw)
                records.append({"key": k, "prompt_version": self.prompt_version, "question": q, "gold": g,
                                "answer": a, "label": label, "score": LABEL_SCORES.get(label) if label else None,
                                "raw": raw})
            for r in records:
                self.cache[r["key"]] = r
            self._append(records)
        scores = [self.cache[k]["score"] for k in keys]
        failures = [self.cache[k] for k in keys if self.cache[k]["score"] is None]
        self.stats["judged"] += len(keys)
        self.stats["format_failures"] += len(failures)
        if failures:
            log.warning(
                "LLM judge (%s): %d/%d replies had no CORRECT/WRONG label (scored None); first: %r",
                self.prompt_version, len(failures), len(keys), failures[0]["raw"][:200],
            )
        return scores

    # ---- cache file ----
    def _append(self, records: list[dict[str, Any]]) -> None:
        if self.cache_path is None or not records:
            return
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.cache_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            for r in records:  # one write() per line: whole lines or nothing, even with several writers
                os.write(fd, (json.dumps(r, ensure_ascii=False) + "\n").encode())
        finally:
            os.close(fd)

    def _load_cache(self) -> None:
        assert self.cache_path is not None
        with open(self.cache_path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    r = json.loads(line)
                    key, version = r["key"], r["prompt_version"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    log.warning("%s:%d: unreadable judge-cache line skipped", self.cache_path, lineno)
                    continue
                if version == self.prompt_version:
                    self.cache[key] = r


def make_judge(spec: str, cache_path: str | None = None) -> LLMJudge:
    """Mem0's judge on the generation backend `spec` (what `memrl synth distill judge=SPEC` runs)."""
    from memrl.policies.backends import make_backend  # deferred: imports torch

    return LLMJudge(make_backend(spec), cache_path=cache_path)

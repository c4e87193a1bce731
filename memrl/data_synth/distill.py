"""Minimal sufficient evidence by greedy leave-one-out (Context-Picker's offline mining, anchors.md section 3).

    memrl synth distill --input data/synth/train.jsonl --output data/synth/train.min.jsonl
    memrl synth distill --input locomo-conv26.jsonl --output out.jsonl --reader transformers:PATH

For every question: take candidate evidence (the gold evidence turns; or, where a question has none, the
top-k turns BM25 finds for [question; answer] -- the answer is used offline, as Context-Picker does); ask a
reader to answer from the candidates; if it is not correct (LoCoMo F1 >= threshold) the question gets no
minimal set; otherwise drop one turn at a time and keep it dropped whenever the reader is still correct,
repeating passes until no turn can go. The surviving turn ids are `question.minimal_evidence`; what happened
is in `question.meta["loo"]`. Questions whose gold answer is an abstention get an empty minimal set: nothing
in the dialogue supports an answer, which is the point.

Readers see the question and the candidate turns (speaker, text, session date), never the gold answer.
- `heuristic` (default, pure Python): an extractive reader. It ranks sentences by stemmed word overlap with the
  question (plus a bonus when the speaker is named in it), then answers by question type: "when" -> the best
  sentence's time expression resolved against its session date (render.resolve_time_expression); "how long"
  -> a duration; "how many days between A and B", "before or after", "which came first" -> dates of the
  two best-matching sentences compared; "still ...?" -> No when the sentence says something ended, else Yes;
  "where / name / called" -> capitalised words the question does not contain; lists ("names of ...'s pets",
  "A and B") -> one span per top sentence, comma-joined; anything else -> the best sentence minus the
  question's words and stopwords.
  Limits: it cannot paraphrase, infer, or count; it is blind to who is speaking beyond the name bonus; it
  answers from one sentence (two for comparisons), so multi-sentence reasoning fails and those questions
  keep no minimal set (status "reader_failed"). Minimal sets from it are therefore smallest sets an extractive
  reader needs, which for single-fact questions is the stating turn.
- `transformers:PATH` / `vllm:PATH` (any generation backend): the model answers from the candidate turns,
  greedy, one short line.
Correct means LoCoMo F1 (memrl.rewards.accuracy.locomo_f1, per category) >= threshold, or, with
`judge=SPEC`, Mem0's CORRECT/WRONG judge (memrl.policies.judge.LLMJudge) on a generation backend saying
CORRECT (an unparsable verdict counts as not correct).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from memrl.data.schema import ABSTAIN_ANSWER, Conversation, Question
from memrl.data_synth.time_expressions import format_date, resolve_time_expression
from memrl.dist import make_executor
from memrl.memory.bank import MemoryBank, stem
from memrl.protocol.generation import GenerationBackend, SamplingParams
from memrl.rewards.accuracy import locomo_f1

ABSTAIN_MARKERS = ("not mentioned", "no information available")


@dataclass(frozen=True)
class EvidenceTurn:
    turn_id: str
    speaker: str
    text: str
    session_time: str | None  # ISO timestamp of the turn's session


Reader = Callable[[str, Sequence[EvidenceTurn]], str]


# ==== heuristic reader ================================================================================
_WORD = re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*")
_SENT = re.compile(r"(?<=[.!?])\s+")
_STOP = frozenset(["a", "an", "the", "and", "or", "of", "to", "in", "on", "at", "for", "with", "from", "by", "is", "are", "was", "were", "be", "been", "being", "do", "does", "did", "have", "has", "had", "i", "me", "my", "we", "our", "you", "your", "he", "she", "his", "her", "it", "its", "they", "them", "their", "this", "that", "these", "those", "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "much", "many", "any", "some", "still", "now", "currently", "these", "days", "there", "here", "than", "then", "as", "into", "about", "so", "just", "not", "no", "yes", "if", "but", "also", "very", "really", "too", "did", "does", "do", "can", "could", "would", "should", "will", "shall", "may", "might", "after", "before", "first", "earlier", "happened", "came", "passed", "between", "over", "name", "named", "called", "s", "t", "m", "d", "ve", "ll", "re"])
_ENDED = re.compile(r"\b(not \w+ing|anymore|any more|no longer|quit|gave up|given up|stopped|cancel+ed|is off|"
                    r"passed away|sold|broke up|split up|rehome|isn't happening|no more)\b", re.IGNORECASE)
_DURATION = re.compile(r"\b((?:a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|\d+)\s+"
                       r"(?:day|week|month|year)s?)\b", re.IGNORECASE)


def _stem_tokens(text: str) -> list[str]:

    return [stem(w) for w in (m.group(0).lower() for m in _WORD.finditer(text)) if w not in _STOP]


@dataclass
class _Sentence:
    text: str
    turn: EvidenceTurn
    stems: frozenset
    order: int


def _sentences(evidence: Sequence[EvidenceTurn]) -> list[_Sentence]:
    out = []
    for t in evidence:
        for part in _SENT.split(t.text.strip()):
            if part.strip():
                out.append(_Sentence(part.strip(), t, frozenset(_stem_tokens(part)), len(out)))
    return out


# Question words whose answers are usually stated with another verb ("Where does Ana live?" / "I moved to
# Porto"). Small on purpose: the reader is a baseline, not a paraphrase model.
_EXPAND = {"live": ("move", "home", "base", "reloc"), "work": ("job", "hire"), "job": ("work", "hire"),
           "favorit": ("love", "best"), "studi": ("learn",), "learn": ("studi",)}


def _rank(query: str, sents: list[_Sentence], names: set[str]) -> list[tuple[float, _Sentence]]:
    q = set(_stem_tokens(query))
    for word in list(q):
        q.update(_EXPAND.get(word, ()))
    scored = []
    for s in sents:
        score = len(q & s.stems) + (1.0 if s.turn.speaker in names else 0.0)
        scored.append((score, s))
    scored.sort(key=lambda x: (-x[0], -x[1].order))  # ties go to the later statement: the later one wins
    return scored


def _names_in(question: str, evidence: Sequence[EvidenceTurn]) -> set[str]:
    speakers = {t.speaker for t in evidence}
    return {n for n in speakers if re.search(rf"\b{re.escape(n)}\b", question)}


def _time_of(s: _Sentence):
    if not s.turn.session_time:
        return None
    return resolve_time_expression(s.text, s.turn.session_time[:10])


def _dated(query: str, sents, names):
    """The best-matching sentence that carries a resolvable time, and that time."""
    for score, s in _rank(query, sents, names):
        if score <= 0:
            break
        ref = _time_of(s)
        if ref is not None:
            return s, ref
    return None, None


_NEGATED = re.compile(r"\b(?:not|instead of|rather than) (?:the |a |an )?[\w-]+(?: [\w-]+)?", re.IGNORECASE)


def _span(question: str, sentence: str, capitalised: bool) -> str:
    qwords = {w.lower() for w in _WORD.findall(question)}
    sentence = _NEGATED.sub(" ", sentence)  # "my rabbit is called Biscuit, not Coco": Coco is what it is not
    words = _WORD.findall(sentence)
    if capitalised:
        caps = [w for i, w in enumerate(words) if i > 0 and w[0].isupper() and w.lower() not in qwords
                and w.lower() not in _STOP]
        if caps:
            return " ".join(caps)
    keep = [w for w in words if w.lower() not in qwords and w.lower() not in _STOP]
    return " ".join(keep) if keep else sentence


def _split_pair(question: str) -> tuple[str, str] | None:
    body = question.rstrip("?")
    for sep in (" before or after ", " or ", " and "):
        if sep in body:
            a, b = body.split(sep, 1)
            return a, b
    return None


def heuristic_reader(question: str, evidence: Sequence[EvidenceTurn]) -> str:
    """See the module docstring. Returns ABSTAIN_ANSWER when nothing in the evidence matches."""
    sents = _sentences(evidence)
    names = _names_in(question, evidence)
    ranked = _rank(question, sents, names)
    if not ranked or ranked[0][0] <= 0:
        return ABSTAIN_ANSWER
    q = question.lower()
    best = ranked[0][1]
    if " before or after " in q or q.startswith(("how many days", "which happened first", "which came earlier")):
        pair = _split_pair(question.split(",", 1)[-1] if "," in question else question)
        if pair:
            (_, r1), (_, r2) = _dated(pair[0], sents, names), _dated(pair[1], sents, names)
            if r1 is not None and r2 is not None:
                d1, d2 = dt.date.fromisoformat(r1.date), dt.date.fromisoformat(r2.date)
                if q.startswith("how many days"):
                    n = abs((d2 - d1).days)
                    return f"{n} day" + ("s" if n != 1 else "")
                if " before or after " in q:
                    return "before" if d1 < d2 else "after"
                a, b = pair
                a = a.split(":", 1)[-1].strip()
                return a if d1 <= d2 else b.strip()
    if q.startswith("when") or "what date" in q or "which year" in q or "what month" in q:
        s, ref = _dated(question, sents, names)
        if ref is not None:
            return format_date(ref)
    if q.startswith("how long"):
        for score, s in ranked:
            m = _DURATION.search(s.text)
            if m:
                return m.group(1)
    if re.match(r"^(is|does|do|did|are|has)\b", q) and "still" in q:
        return "No" if _ENDED.search(best.text) else "Yes"
    capitalised = q.startswith("where") or bool(re.search(r"\b(name|called|named|who)\b", q)) or \
        "city" in q or "language" in q
    plural = re.search(r"\b(names|pets|hobbies|cities|languages)\b", q) or re.search(
        r"\b[A-Z][a-z]+\b and \b[A-Z][a-z]+\b", question)
    if plural:
        top = ranked[0][0]
        spans = []
        for score, s in ranked:
            if score < max(1.0, 0.6 * top):
                break
            span = _span(question, s.text, capitalised)
            if span and span not in spans:
                spans.append(span)
            if len(spans) >= 4:
                break
        return ", ".join(spans)
    return _span(question, best.text, capitalised)


# ==== generation-backend reader =======================================================================
class GenerationReader:
    """Any memrl generation backend as a reader: greedy, one short answer line."""

    def __init__(self, backend: GenerationBackend, max_tokens: int = 32):
        self.backend = backend
        self.params = SamplingParams(n=1, temperature=0.0, max_tokens=max_tokens, stop=["\n"])

    def __call__(self, question: str, evidence: Sequence[EvidenceTurn]) -> str:
        lines = "\n".join(f"[{(t.session_time or '')[:10]}] {t.speaker}: {t.text}" for t in evidence)
        prompt = [{"role": "system", "content": "Answer the question from the dialogue excerpts only, with a short "
                                                "phrase. Resolve relative dates against the date in brackets. If "
                                                f"the excerpts do not say, answer: {ABSTAIN_ANSWER}."},
                  {"role": "user", "content": f"Dialogue excerpts:\n{lines}\n\nQuestion: {question}\nAnswer:"}]
        return self.backend.generate([prompt], self.params)[0][0].text.strip()


def make_reader(spec: str, make_backend: Callable[[str], GenerationBackend] | None = None) -> Reader:
    """"heuristic", or a backend spec read through `make_backend` (passed in: `memrl.policies.backends.make_backend`)."""
    _check_spec(spec, "reader")
    if spec == "heuristic":
        return heuristic_reader
    if make_backend is None:
        raise ValueError(f"reader {spec!r} needs a generation backend factory (make_backend=)")
    return GenerationReader(make_backend(spec))


# ==== leave-one-out ===================================================================================
def _is_abstention(q: Question) -> bool:
    return str(q.category_id) == "5" or q.answer.strip().lower() == ABSTAIN_ANSWER.lower() or \
        any(m in q.answer.lower() for m in ABSTAIN_MARKERS)


Grader = Callable[[str, Question], float]  # (prediction, question with its gold) -> score in [0, 1]


def _score(pred: str, q: Question) -> float:
    return locomo_f1(pred, q.answer, q.category_id)


class JudgeGrader:
    """Mem0's LLM judge as a grader: 1.0 for CORRECT, 0.0 for WRONG or an unparsable verdict."""

    def __init__(self, judge: Any):
        self.judge = judge  # `judge(questions, golds, answers) -> scores`, e.g. memrl.policies.judge.LLMJudge

    def __call__(self, pred: str, q: Question) -> float:
        return self.judge.judge([q.question], [q.answer], [pred])[0] or 0.0


def make_grader(judge: str | None = None, judge_cache: str | None = None,
                make_judge: Callable[[str, str | None], Any] | None = None) -> Grader:
    """LoCoMo F1, or the LLM judge `make_judge(spec, cache_path)` builds (passed in: `memrl.policies.judge.make_judge`)."""
    if not judge:
        return _score
    if make_judge is None:
        raise ValueError(f"judge {judge!r} needs a judge factory (make_judge=)")
    return JudgeGrader(make_judge(judge, judge_cache))


def _check_spec(spec: str, what: str) -> None:
    if spec != "heuristic" and ":" not in spec and not spec.startswith(("/", ".")):
        raise ValueError(f"{what} must be 'heuristic' or a backend spec like 'transformers:PATH', got {spec!r}")


def turn_index_bank(conv: Conversation):
    """A MemoryBank with one entry per turn: the bank's BM25 (bm25s) as a turn retriever."""

    bank = MemoryBank()
    for s, t in conv.turns():
        if t.text.strip():
            bank.add(t.text, owner=t.speaker, source_turn_ids=[t.turn_id])
    return bank


def bm25_candidates(bank, q: Question, k: int) -> list[str]:
    """Top-k turn ids for [question; answer] (the answer is used offline, as in Context-Picker)."""
    return [e.source_turn_ids[0] for e, _ in bank.search(f"{q.question} {q.answer}", k=k)]


def minimal_evidence(q: Question, candidates: list[EvidenceTurn], reader: Reader, threshold: float = 0.5,
                     grade: Grader = _score) -> tuple[list[str] | None, dict[str, Any]]:
    """Greedy leave-one-out from `candidates`; (turn ids, info) or (None, info) if the full set fails."""
    if _is_abstention(q):
        return [], {"status": "abstention", "candidates": len(candidates), "calls": 0}
    calls = 1
    score = grade(reader(q.question, candidates), q)
    if score < threshold:
        return None, {"status": "reader_failed", "score": round(score, 4), "candidates": len(candidates),
                      "calls": calls}
    kept = list(candidates)
    changed = True
    while changed and len(kept) > 1:
        changed = False
        for turn in list(kept):
            if len(kept) == 1:
                break
            trial = [t for t in kept if t is not turn]
            calls += 1
            s = grade(reader(q.question, trial), q)
            if s >= threshold:
                kept, score, changed = trial, s, True
    return [t.turn_id for t in kept], {"status": "ok", "score": round(score, 4), "candidates": len(candidates),
                                       "calls": calls}


def distill_conversation(conv: Conversation, reader: Reader, threshold: float = 0.5, top_k: int = 10,
                         candidates: str = "gold", grade: Grader = _score) -> Conversation:
    """Fill `minimal_evidence` and `meta["loo"]` for every question of `conv` (in place; also returned)."""
    index = conv.turn_index()
    bank = None
    for q in conv.questions:
        use_gold = candidates == "gold" and any(t in index for t in q.evidence_turn_ids)
        if use_gold:
            ids = [t for t in q.evidence_turn_ids if t in index]
        else:
            bank = turn_index_bank(conv) if bank is None else bank
            ids = bm25_candidates(bank, q, top_k)
        ev = [EvidenceTurn(t, index[t][1].speaker, index[t][1].text, index[t][0].timestamp) for t in ids]
        got, info = minimal_evidence(q, ev, reader, threshold, grade)
        q.minimal_evidence = got
        q.meta = dict(q.meta, loo=dict(info, source="gold" if use_gold else f"bm25@{top_k}"))
    return conv


def _distill_task(task: dict[str, Any]) -> list[dict[str, Any]]:
    """Executor task (top-level, picklable): distill a list of conversation dicts."""
    reader = make_reader(task["reader"], task.get("make_backend"))
    grade = make_grader(task["judge"], task["judge_cache"], task.get("make_judge"))
    out = []
    for d in task["conversations"]:
        conv = Conversation.from_dict(d)
        distill_conversation(conv, reader, task["threshold"], task["top_k"], task["candidates"], grade)
        out.append(conv.to_dict())
    return out


def distill(convs: list[Conversation], reader: str = "heuristic", threshold: float = 0.5, top_k: int = 10,
            candidates: str = "gold", executor: Any = "local", num_workers: int = 1, address: str | None = None,
            judge: str | None = None, judge_cache: str | None = None, make_backend: Callable | None = None,
            make_judge: Callable | None = None) -> tuple[list[Conversation], dict[str, Any]]:
    """Distill many conversations through memrl.dist (one task per conversation); returns them and a summary.

    `executor` is "local", "ray", or an executor object from memrl.dist.make_executor (left running).
    A model `reader` needs `make_backend` (`memrl.policies.backends.make_backend`), a `judge` needs `make_judge`
    (`memrl.policies.judge.make_judge`): the caller passes them, data_synth imports no policy."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if candidates not in ("gold", "bm25"):
        raise ValueError(f"candidates must be 'gold' or 'bm25', got {candidates!r}")
    _check_spec(reader, "reader")
    if reader != "heuristic" and make_backend is None:
        raise ValueError(f"reader {reader!r} needs a generation backend factory (make_backend=)")
    if judge:
        _check_spec(judge, "judge")
        if make_judge is None:
            raise ValueError(f"judge {judge!r} needs a judge factory (make_judge=)")

    t0 = time.perf_counter()
    tasks = [{"conversations": [c.to_dict()], "reader": reader, "threshold": threshold, "top_k": top_k,
              "candidates": candidates, "judge": judge, "judge_cache": judge_cache,
              "make_backend": make_backend, "make_judge": make_judge} for c in convs]
    own = isinstance(executor, str)
    ex = make_executor(executor, num_workers=num_workers, address=address) if own else executor
    try:
        results = ex.map(_distill_task, tasks)
    finally:
        if own and executor == "ray":
            ex.shutdown()
    out = [Conversation.from_dict(d) for batch in results for d in batch]
    return out, summarize_distill(out, time.perf_counter() - t0)


def summarize_distill(convs: list[Conversation], seconds: float | None = None) -> dict[str, Any]:
    status: dict[str, int] = {}
    cand = kept = n_ok = 0
    for c in convs:
        for q in c.questions:
            info = q.meta.get("loo", {})
            st = info.get("status", "missing")
            status[st] = status.get(st, 0) + 1
            if st == "ok":
                n_ok += 1
                cand += info["candidates"]
                kept += len(q.minimal_evidence or [])
    out = {"conversations": len(convs), "questions": sum(len(c.questions) for c in convs),
           "status": dict(sorted(status.items())),
           "mean_candidates_ok": round(cand / n_ok, 3) if n_ok else None,
           "mean_minimal_ok": round(kept / n_ok, 3) if n_ok else None}
    if seconds is not None:
        out["seconds"] = round(seconds, 2)
    return out

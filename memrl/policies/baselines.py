"""Baselines that need no training: reference rows for every table, and the teachers of the demo.

One interface for heuristic and LLM policies (memrl.policies.llm has the LLM side), so evaluation swaps them:
- managers:  `decide(steps: list[ManagerStep]) -> list[str]`: one completion per step, in the compact JSON a
             model would write (`{"ops": [...]}`); the environment parses it like any model output.
- answerers: `answer(requests: list[AnswerRequest]) -> list[AnswerParse]`.
Every baseline has a `name` and a `kind` (its role: "manager" / "answer"); `BASELINES` maps names to classes.

Managers
- `AddOnlyManager`: ADD every candidate fact (Mem0 v3's single-pass ADD-only extraction, anchors section 5.2);
  defined in `memrl.protocol.add_only`, the answer environment's default bank writer.
- `RuleBasedManager`: Mem0-style rules. Per fact: DELETE the memory it negates ("no longer", "quit",
  "sold", ...); NOOP on an exact repeat; UPDATE the memory about the same thing; else ADD. "The same thing"
  is the synthetic world key when the data provides one (the fact's key and the memory's key), else a text
  heuristic: the longest shared prefix of content-word stems, at least two (subject + verb lemma, e.g.
  "Ana lives in Porto" / "Ana lives in Lyon"). Limit of the heuristic: two attributes phrased with the same
  first words ("Ana's favorite food" / "Ana's favorite music") collide when only one of them is stored.
  `rule_based_text` is the same manager forced to use the text heuristic only.
- `GoldOpsManager`: replays the gold operations (the oracle manager; needs synthetic data).
- `NoisyTeacherManager(error_rate, seed)`: the gold ops with deliberate mistakes on UPDATE / DELETE ops
  (UPDATE -> ADD: a stale duplicate; DELETE -> NOOP: a missed retraction; or a wrong target id), the
  imperfect SFT teacher of the demo. Deterministic per (seed, conversation, step).

Answerers (extractive: they return words of one text, not generated answers)
- `BM25Answerer`: the top-1 candidate by BM25 score (the retrieval score when the candidates carry one);
  ties go to the candidate listed first, which for memories is bank order, oldest first. That is on purpose:
  a reader that sees two current memories "Ana lives in Porto" / "Ana lives in Lyon" is confused, and the
  stale one wins the tie, so a manager that leaves superseded facts open loses accuracy, as it would with
  a real reader. The answer is the memory text without the question's words and without stopwords
  ("Ana lives in Lyon" for "Where does Ana live?" -> "Lyon"). Limits: no reasoning, no date arithmetic,
  multi-hop and counting questions are out of reach; long texts (raw turns) give long, low-precision answers.
  Nothing relevant (all scores 0) -> the abstention answer.
- `BM25TurnsAnswerer`: the same extraction over all turns of the conversation (no bank).
- `OracleEvidenceAnswerer`: the same extraction over the gold evidence turns only.
- `GoldAnswerer`: the gold answer (an upper-bound sanity check of the scoring); selects the gold candidates.
- `AbstainAnswerer`: always `ABSTAIN_ANSWER`, the LoCoMo category-5 reward hack (scores 1.0 on category 5).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

from memrl.data.schema import ABSTAIN_ANSWER
from memrl.memory.index import TextIndex, bm25_rank, text_tokens
from memrl.protocol.add_only import AddOnlyManager
from memrl.protocol.facts import DELETE_SUFFIX, CandidateFact, normalize_fact_text
from memrl.protocol.parsing import AnswerParse, ops_json
from memrl.protocol.reader import extract_answer, strip_speaker
from memrl.protocol.steps import AnswerRequest, ManagerStep, MemoryView


def _with_time(op: dict[str, Any], event_time: str | None) -> dict[str, Any]:
    if event_time is not None:
        op["event_time"] = event_time
    return op


# ---- managers -------------------------------------------------------------------------------------------------
_NEGATION = re.compile(
    r"\b(no longer|not anymore|any ?more|sold|quit|quitting|broke up|gave up|given up|stopped|passed away|"
    r"moved out|left (?:her|his|their|my) job)\b", re.IGNORECASE)


def _strip_negation(text: str) -> str:
    if text.endswith(DELETE_SUFFIX):
        return text[: -len(DELETE_SUFFIX)]
    return _NEGATION.sub(" ", text)


def _prefix_len(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class RuleBasedManager:
    name = "rule_based"
    kind = "manager"
    reads_gold = True  # by default it reads the synthetic world's gold entry keys (use_keys)

    def __init__(self, use_keys: bool = True, min_prefix: int = 2):
        self.use_keys = use_keys
        self.reads_gold = use_keys  # ORACLE with keys: it reads the synthetic world's gold entry keys
        self.min_prefix = min_prefix

    def _same_thing(self, fact: CandidateFact, text: str, memories: list[MemoryView]) -> MemoryView | None:
        if self.use_keys and fact.entry:  # the world says what the fact is about: trust it
            return next((m for m in memories if m.key == fact.entry), None)
        norm = normalize_fact_text(text)
        for m in memories:
            if normalize_fact_text(m.text) == norm:
                return m
        toks = text_tokens(text)
        best, best_n = None, self.min_prefix - 1
        for m in memories:  # memories are in bank order: ">=" keeps the newest of equally good matches
            n = _prefix_len(toks, text_tokens(m.text))
            if n >= best_n and n >= self.min_prefix:
                best, best_n = m, n
        return best

    def plan(self, step: ManagerStep) -> list[dict[str, Any]]:
        ops: list[dict[str, Any]] = []
        free = list(step.memories)  # a memory is the target of at most one op per step
        for f in step.facts:
            negated = f.text.endswith(DELETE_SUFFIX) or bool(_NEGATION.search(f.text))
            if negated:
                target = self._same_thing(f, _strip_negation(f.text), free)
                if target is not None:
                    ops.append({"op": "DELETE", "id": target.id})
                    free.remove(target)
                continue
            norm = normalize_fact_text(f.text)
            if any(normalize_fact_text(m.text) == norm for m in step.memories):
                continue  # exact repeat: NOOP
            target = self._same_thing(f, f.text, free)
            if target is not None:
                ops.append(_with_time({"op": "UPDATE", "id": target.id, "text": f.text}, f.event_time))
                free.remove(target)
            else:
                ops.append(_with_time({"op": "ADD", "text": f.text}, f.event_time))
        return ops

    def decide(self, steps: Sequence[ManagerStep]) -> list[str]:
        return [ops_json(self.plan(s)) for s in steps]


class RuleBasedTextManager(RuleBasedManager):
    """RuleBasedManager without world keys: the text heuristic only (what it can do on real data)."""

    name = "rule_based_text"
    reads_gold = False

    def __init__(self, min_prefix: int = 2):
        super().__init__(use_keys=False, min_prefix=min_prefix)


class GoldOpsManager:
    """The oracle: the gold ops of the step, targets found by world key among the shown memories."""

    name = "gold_ops"
    kind = "manager"
    reads_gold = True  # ORACLE: drive_manager shows it gold facts and gold-key matches

    def __init__(self) -> None:
        self.missing_targets = 0  # gold UPDATE/DELETE whose entry was not among the shown memories

    def plan(self, step: ManagerStep) -> list[dict[str, Any]]:
        ops: list[dict[str, Any]] = []
        for g in step.gold_ops:
            if g.op in ("ADD", "UPDATE") and not (g.text or "").strip():
                continue
            if g.op == "ADD":
                ops.append(_with_time({"op": "ADD", "text": g.text}, g.event_time))
            elif g.op in ("UPDATE", "DELETE"):
                target = next((m for m in step.memories if m.key == g.entry), None)
                if target is None:
                    self.missing_targets += 1
                    if g.op == "UPDATE":
                        ops.append(_with_time({"op": "ADD", "text": g.text}, g.event_time))
                    continue
                if g.op == "UPDATE":
                    ops.append(_with_time({"op": "UPDATE", "id": target.id, "text": g.text}, g.event_time))
                else:
                    ops.append({"op": "DELETE", "id": target.id})
        return ops

    def decide(self, steps: Sequence[ManagerStep]) -> list[str]:
        return [ops_json(self.plan(s)) for s in steps]


class NoisyTeacherManager(GoldOpsManager):
    """Gold ops with a share `error_rate` of UPDATE/DELETE ops turned into typical mistakes."""

    name = "noisy_teacher"
    seeded = True  # its mistakes depend on `seed`: an evaluation runs it once per seed, with that seed

    def __init__(self, error_rate: float = 0.2, seed: int = 0, wrong_id_share: float = 0.5):
        super().__init__()
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError(f"error_rate must be in [0, 1], got {error_rate}")
        if not 0.0 <= wrong_id_share <= 1.0:
            raise ValueError(f"wrong_id_share must be in [0, 1], got {wrong_id_share}")
        self.error_rate = error_rate
        self.wrong_id_share = wrong_id_share  # share of mistakes that target a wrong memory (else UPDATE->ADD / skip)
        self.seed = seed
        self.mistakes: dict[str, int] = {"update_as_add": 0, "delete_skipped": 0, "wrong_id": 0}

    def plan(self, step: ManagerStep) -> list[dict[str, Any]]:
        rng = random.Random(f"{self.seed}:{step.conversation_id}:{step.index}")
        out: list[dict[str, Any]] = []
        for op in super().plan(step):
            if op["op"] not in ("UPDATE", "DELETE") or rng.random() >= self.error_rate:
                out.append(op)
                continue
            others = [m.id for m in step.memories if m.id != op["id"]]
            if others and rng.random() < self.wrong_id_share:
                out.append(dict(op, id=rng.choice(others)))
                self.mistakes["wrong_id"] += 1
            elif op["op"] == "UPDATE":
                out.append({k: v for k, v in op.items() if k != "id"} | {"op": "ADD"})
                self.mistakes["update_as_add"] += 1
            else:
                self.mistakes["delete_skipped"] += 1
        return out


# ---- answerers ------------------------------------------------------------------------------------------------
def _best(scores: Sequence[float]) -> int | None:
    """Index of the best score, ties to the first listed; None when nothing scores above 0."""
    if not scores:
        return None
    i = min(range(len(scores)), key=lambda j: (-scores[j], j))
    return i if scores[i] > 0 else None


class BM25Answerer:
    name = "bm25"
    kind = "answer"

    def answer(self, requests: Sequence[AnswerRequest]) -> list[AnswerParse]:
        out = []
        for r in requests:
            cands = r.candidates
            scores = [c.score for c in cands]
            if any(s is None for s in scores):
                scores = bm25_rank(r.question.question, [c.text for c in cands])
            i = _best(scores)  # type: ignore[arg-type]
            if i is None:
                out.append(AnswerParse(answer=ABSTAIN_ANSWER, ok=True))
                continue
            c = cands[i]
            out.append(AnswerParse(selected_ids=[c.id], answer=self._span(r.question.question, c), ok=True))
        return out

    def _span(self, question: str, cand) -> str:
        return extract_answer(question, cand.text, cand.owner)


class BM25VerbatimAnswerer(BM25Answerer):
    """BM25's top memory, answered with the memory's whole text: the "return the evidence" baseline of
    retrieval QA. Verbose on purpose (lower F1 than the extracted span), and the simplest output a model can
    imitate (a contiguous copy), which makes it the demo's imperfect teacher for the answer agent."""

    name = "bm25_verbatim"

    def _span(self, question: str, cand) -> str:
        return strip_speaker(cand.text, cand.owner).strip()


class BM25TurnsAnswerer:
    """BM25 top-1 over every raw dialogue turn (no memory bank), answered by the extractive reader.

    Named `full_context` before: it never read the whole conversation (on LoCoMo its answers equal `bm25`'s
    over an add-only bank). There is no full-context (whole conversation to an LLM) baseline."""

    name = "bm25_turns"
    kind = "answer"

    def __init__(self) -> None:
        self._indexes: dict[str, tuple[TextIndex, dict[str, tuple[str, str]]]] = {}

    def answer(self, requests: Sequence[AnswerRequest]) -> list[AnswerParse]:
        out = []
        for r in requests:
            conv = r.conversation
            if conv is None:
                raise ValueError("BM25TurnsAnswerer needs AnswerRequest.conversation")
            if conv.conversation_id not in self._indexes:
                turns = {t.turn_id: (t.speaker, f"{t.speaker}: {t.text}") for _, t in conv.turns()}
                self._indexes[conv.conversation_id] = (
                    TextIndex.from_docs((tid, text, spk) for tid, (spk, text) in turns.items()), turns)
            index, turns = self._indexes[conv.conversation_id]
            hits = index.search(r.question.question, 1)
            if not hits:
                out.append(AnswerParse(answer=ABSTAIN_ANSWER, ok=True))
                continue
            speaker, text = turns[hits[0][0]]
            out.append(AnswerParse(answer=extract_answer(r.question.question, text, speaker), ok=True,
                                   selected_ids=[hits[0][0]]))
        return out


class OracleEvidenceAnswerer:
    name = "oracle_evidence"
    kind = "answer"
    reads_gold = True  # ORACLE: the gold evidence turns

    def answer(self, requests: Sequence[AnswerRequest]) -> list[AnswerParse]:
        out = []
        for r in requests:
            if r.conversation is None:
                raise ValueError("OracleEvidenceAnswerer needs AnswerRequest.conversation")
            index = r.conversation.turn_index()
            ev = [index[t][1] for t in r.question.evidence_turn_ids if t in index]
            if not ev:
                out.append(AnswerParse(answer=ABSTAIN_ANSWER, ok=True))
                continue
            texts = [f"{t.speaker}: {t.text}" for t in ev]
            i = _best(bm25_rank(r.question.question, texts))
            t = ev[i if i is not None else 0]
            out.append(AnswerParse(answer=extract_answer(r.question.question, f"{t.speaker}: {t.text}", t.speaker),
                                   ok=True, selected_ids=[t.turn_id]))
        return out


class GoldAnswerer:
    name = "gold_answer"
    kind = "answer"
    reads_gold = True  # ORACLE: the gold answer

    def answer(self, requests: Sequence[AnswerRequest]) -> list[AnswerParse]:
        out = []
        for r in requests:
            ev = set(r.question.evidence_turn_ids)
            sessions = set(r.question.evidence_session_ids)
            ids = [c.id for c in r.candidates if (ev & set(c.source_ids)) or c.doc_id in sessions]
            out.append(AnswerParse(selected_ids=ids, answer=r.question.answer, ok=True))
        return out


class AbstainAnswerer:
    name = "abstain"
    kind = "answer"

    def answer(self, requests: Sequence[AnswerRequest]) -> list[AnswerParse]:
        return [AnswerParse(answer=ABSTAIN_ANSWER, ok=True) for _ in requests]


class PickFirstAnswerer:
    """Constant-output control: always the first listed candidate ([0]), answered by the extractive reader.
    With candidates in relevance order this is BM25's top hit; in bank order, the oldest memory."""

    name = "pick_first"
    kind = "answer"

    def _index(self, r: AnswerRequest) -> int:
        return 0

    def answer(self, requests: Sequence[AnswerRequest]) -> list[AnswerParse]:
        out = []
        for r in requests:
            if not r.candidates:
                out.append(AnswerParse(answer=ABSTAIN_ANSWER, ok=True))
                continue
            c = r.candidates[self._index(r)]
            out.append(AnswerParse(selected_ids=[c.id], answer=extract_answer(r.question.question, c.text, c.owner),
                                   ok=True))
        return out


class PickLastAnswerer(PickFirstAnswerer):
    """Constant-output control: always the last listed candidate (in bank order: the newest memory)."""

    name = "pick_last"

    def _index(self, r: AnswerRequest) -> int:
        return len(r.candidates) - 1


class RandomPickAnswerer(PickFirstAnswerer):
    """Chance control: a uniformly random candidate (seeded per question), answered by the extractive reader."""

    name = "random_pick"
    seeded = True  # `memrl eval seeds=[...]` runs it once per seed, with that seed

    def __init__(self, seed: int = 0):
        self.seed = seed

    def _index(self, r: AnswerRequest) -> int:
        return random.Random(f"{self.seed}:{r.question.question_id}").randrange(len(r.candidates))


MANAGER_BASELINES: dict[str, type] = {
    c.name: c for c in (AddOnlyManager, RuleBasedManager, RuleBasedTextManager, GoldOpsManager, NoisyTeacherManager)
}
ANSWER_BASELINES: dict[str, type] = {
    c.name: c for c in (BM25Answerer, BM25VerbatimAnswerer, BM25TurnsAnswerer, OracleEvidenceAnswerer, GoldAnswerer,
                        AbstainAnswerer, PickFirstAnswerer, PickLastAnswerer, RandomPickAnswerer)
}
BASELINES: dict[str, type] = {**MANAGER_BASELINES, **ANSWER_BASELINES}
# Baselines that read gold labels (as teachers or bank builders they make a run an oracle run).
ORACLE_BASELINES = frozenset(name for name, c in BASELINES.items() if getattr(c, "reads_gold", False))
RENAMED = {"full_context": "bm25_turns"}  # what it was called: it never read the full context


def bank_builder(name: str = "auto"):
    """The manager that writes a conversation's bank, by baseline name, as a function of the conversation (what
    `memrl.envs.answer.candidates.CandidateBuilder` takes). "auto" is an ORACLE bank: it replays the gold ops on
    conversations that have them, else adds everything."""

    def build(conv) -> Any:
        resolved = name
        if resolved == "auto":
            resolved = "gold_ops" if conv.gold_ops else "add_only"
        return make_baseline(resolved)

    return build


def make_baseline(name: str, **kwargs: Any):
    """A baseline by name (`memrl eval policy=<name>`); unknown names list the known ones."""
    if name in RENAMED:
        raise ValueError(f"baseline {name!r} is now {RENAMED[name]!r} ({BASELINES[RENAMED[name]].__doc__.splitlines()[0]})")
    try:
        cls = BASELINES[name]
    except KeyError:
        raise ValueError(f"unknown baseline {name!r}; known: {sorted(BASELINES)}") from None
    return cls(**kwargs)


__all__ = [
    "ANSWER_BASELINES",
    "BASELINES",
    "MANAGER_BASELINES",
    "AbstainAnswerer",
    "AddOnlyManager",
    "BM25Answerer",
    "BM25TurnsAnswerer",
    "GoldAnswerer",
    "GoldOpsManager",
    "NoisyTeacherManager",
    "ORACLE_BASELINES",
    "OracleEvidenceAnswerer",
    "PickFirstAnswerer",
    "PickLastAnswerer",
    "RandomPickAnswerer",
    "RuleBasedManager",
    "RuleBasedTextManager",
    "extract_answer",
    "make_baseline",
    "ops_json",
]

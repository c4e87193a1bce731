"""The memory-manager environment: one conversation per episode, one unit (turn or session) per step.

    step k:  observation = prompt(unit k's dialogue, its candidate facts, the related memories with
             per-prompt ids)  ->  action = the policy's completion  ->  parse, apply to the versioned bank,
             reward = weighted terms (below), info = structured state

Reward terms (weights in `ManagerEnvConfig`, summed by `memrl.rewards.CompositeReward`):
- format:   output that does not parse scores `format_penalty` (-1) and nothing else; the bank is unchanged.
- invalid:  -(rejected ops / ops), e.g. an UPDATE naming an id that was not in the prompt (Mem0's KeyError
            class of bug, anchors section 5.4) is rejected, reported in info, never applied elsewhere.
- op:       agreement with the gold ops of the unit (synthetic data): each gold op is paired with the
            policy's op on the same world key, each extra op of the policy with a gold NOOP; the term is
            the share of pairs whose op types agree. World keys of bank entries are set from the facts:
            an ADD / UPDATE whose text states a candidate fact labels its entry with that fact's key.
- qa:       Memory-R1's outcome reward: probe questions answered by a frozen answerer over the bank
            after the step, scored with `qa_metric`. "linked" probes are the questions whose evidence
            completes at this unit (Memory-R1 pairs each turn with its QA pairs); "complete" samples among
            all questions whose evidence has been seen.
- temporal: `rewards.temporal.write_temporal_reward` (event times stored, superseded facts closed by an
            UPDATE instead of duplicated by an ADD, no duplicate of a current memory).
- size:     Mem-alpha's compression term, -len(bank) / max(1, candidate facts seen so far).

Terms that do not apply (no gold ops on real data, no probe at this step) are left out, not counted as 0.

What the policy decides and what the environment fills in: the policy names an op and, for UPDATE/DELETE,
a prompt id. Compact ADD/UPDATE items may omit `text` when the step has exactly one candidate fact: the
fact is used (text and event time), so a tiny model can act by choosing op + id. An op whose text is a
candidate fact verbatim inherits that fact's event time (extractors return times with facts, as Mem0 stores
metadata). The owner of a new memory is the fact's subject when known, else the speaker.

GRPO needs samples that start from the same memory state: `snapshot_dataset` exports (prompt, bank JSON,
step) rows and `score_manager_completion` rebuilds the state, applies one completion and scores it through
the same `apply_completion` the environment uses.
"""

from __future__ import annotations

import bisect
import json
import re
import random
import statistics
import string
import time as _time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Protocol

import gymnasium as gym
from gymnasium import spaces

from memrl.data.schema import Conversation, GoldOp, Question, Session, Turn
from memrl.envs.facts import (
    FACT_SOURCES,
    CandidateFact,
    extract_facts,
    gold_ops_by_turn,
    match_fact,
    normalize_fact_text,
)
from memrl.envs.retrieval import TextIndex
from memrl.memory.bank import IdMap, MemoryBank
from memrl.memory.ops import ApplyResult, Op, normalize_op_name
from memrl.policies.parsing import ManagerParse, parse_json_lenient, parse_manager_output
from memrl.policies.prompts import format_memories_compact, format_memories_mem0, format_turns, render
from memrl.rewards import CompositeReward, RewardResult
from memrl.rewards.accuracy import accuracy
from memrl.rewards.format import invalid_op_penalty
from memrl.rewards.temporal import write_temporal_reward

MANAGER_PROMPTS = ("compact", "compact_sim", "memory_r1")
UNITS = ("turn", "session")
PROBE_MODES = ("linked", "complete", "none")


@dataclass
class ManagerEnvConfig:
    """Memory-manager environment. Every field is one knob; reward weights cite the paper they come from."""

    # -- what a step shows
    unit: str = "turn"  # "turn" | "session": one step per turn or per session
    facts: str = "auto"  # candidate facts: "gold" (gold ops / meta facts) | "turn" (the turn text) | "auto"
    #                      (auto: gold when the conversation has gold ops, else the turn text)
    repeat_facts: bool = True  # show restated facts (gold NOOP with text) so "don't store twice" is learnable
    skip_empty: bool = True  # units without candidate facts are auto-NOOPed and not shown
    prompt: str = "compact"  # "compact" (tiny models) | "memory_r1" (Mem0 update prompt, Memory-R1 Figs. 9-10)
    related_k: int = 5  # BM25 hits per candidate fact (Mem0 searches each fact with limit=5)
    related_per_owner: bool = False  # search only the fact subject's memories
    include_key_matches: bool = True  # also show current memories with the fact's world key (oracle recall)
    max_related: int = 20  # cap on memories shown per step
    memory_order: str = "bank"  # "bank" (creation order) | "relevance" (key matches, then BM25 rank: the most
    #                             related memory is [0], which makes the decision local for tiny models)
    # -- downstream QA probes (Memory-R1's outcome reward)
    probes: str = "linked"  # "linked" | "complete" | "none"
    max_probes: int = 4  # probe questions answered per step (seeded sample when more qualify)
    probe_k: int = 30  # memories retrieved per speaker for the probe answerer (Memory-R1: 30 + 30)
    probe_skip_categories: list[str] = field(default_factory=lambda: ["adversarial"])  # names or ids
    qa_metric: str = "locomo_f1"  # memrl.rewards.accuracy.METRICS key
    # -- reward weights
    w_invalid: float = 0.5  # share of rejected ops (complement of Mem-alpha's r2)
    w_op: float = 1.0  # op agreement with gold ops (ours; synthetic data only)
    w_qa: float = 1.0  # Memory-R1 outcome reward
    w_temporal: float = 0.5  # write-side temporal term (ours)
    w_size: float = 0.05  # Mem-alpha compression weight beta = 0.05 (arXiv 2509.25911, section 4.1)
    format_penalty: float = -1.0  # reward of unparsable output (Memory-T1 / Context-Picker use -1)
    # -- spaces
    max_action_chars: int = 8192
    max_observation_chars: int = 1_000_000

    def validate(self) -> None:
        if self.memory_order not in ("bank", "relevance"):
            raise ValueError(f"ManagerEnvConfig.memory_order: {self.memory_order!r} is not one of ['bank', 'relevance']")
        for name, value, allowed in (("unit", self.unit, UNITS), ("facts", self.facts, FACT_SOURCES + ("auto",)),
                                     ("prompt", self.prompt, MANAGER_PROMPTS), ("probes", self.probes, PROBE_MODES)):
            if value not in allowed:
                raise ValueError(f"ManagerEnvConfig.{name}: {value!r} is not one of {list(allowed)}")
        for name in ("related_k", "max_related", "max_probes", "probe_k", "max_action_chars", "max_observation_chars"):
            if getattr(self, name) < 0:
                raise ValueError(f"ManagerEnvConfig.{name} must be >= 0, got {getattr(self, name)}")

    def weights(self) -> dict[str, float]:
        return {"format": 1.0, "invalid": self.w_invalid, "op": self.w_op, "qa": self.w_qa,
                "temporal": self.w_temporal, "size": self.w_size}


def as_manager_config(config: ManagerEnvConfig | dict | None) -> ManagerEnvConfig:
    if config is None:
        config = ManagerEnvConfig()
    elif isinstance(config, dict):
        config = ManagerEnvConfig(**config)
    elif not isinstance(config, ManagerEnvConfig):  # an OmegaConf node of the schema
        from omegaconf import OmegaConf

        config = ManagerEnvConfig(**OmegaConf.to_container(config, resolve=True))  # type: ignore[arg-type]
    config.validate()
    return config


# ---- observations -----------------------------------------------------------------------------------------
@dataclass
class MemoryView:
    """A memory as one prompt shows it: prompt id, text, time; key/owner are for baselines, not the prompt."""

    id: str  # prompt-local id ("0", "1", ...)
    bank_id: str
    text: str
    owner: str | None = None
    key: str | None = None
    observed_at: str | None = None
    event_time: str | None = None


@dataclass
class ManagerStep:
    """Everything about one step: the prompt, and the structured state behind it (for baselines and logs)."""

    conversation_id: str
    index: int  # step index in the episode
    num_steps: int
    turn_ids: list[str]
    time: str | None  # session timestamp: stamps observed_at / valid_from of what the step writes
    speaker: str
    dialogue: str  # the unit's turns as the prompt shows them
    facts: list[CandidateFact]
    memories: list[MemoryView]
    gold_ops: list[GoldOp]  # never shown to the policy; the oracle manager and the op reward use them
    probes: list[Question]
    facts_seen: int  # candidate facts shown before this step (denominator of the size term)
    has_gold: bool  # the conversation has gold ops (op and temporal terms apply)
    fact_source: str
    prompt_style: str
    messages: list[dict[str, str]] = field(default_factory=list)

    @property
    def id_map(self) -> IdMap:
        return IdMap([m.bank_id for m in self.memories])

    def to_row(self) -> dict[str, Any]:
        """Flat, Arrow-friendly columns (JSON strings for nested parts)."""
        return {
            "prompt": [dict(m) for m in self.messages],
            "conversation_id": self.conversation_id,
            "step_index": self.index,
            "num_steps": self.num_steps,
            "turn_ids": list(self.turn_ids),
            "time": self.time or "",
            "speaker": self.speaker,
            "dialogue": self.dialogue,
            "facts": json.dumps([f.to_dict() for f in self.facts], ensure_ascii=False),
            "memories": json.dumps([asdict(m) for m in self.memories], ensure_ascii=False),
            "id_map": json.dumps({m.id: m.bank_id for m in self.memories}),
            "gold_ops": json.dumps([asdict(g) for g in self.gold_ops], ensure_ascii=False),
            "probes": json.dumps([asdict(q) for q in self.probes], ensure_ascii=False),
            "facts_seen": self.facts_seen,
            "has_gold": self.has_gold,
            "fact_source": self.fact_source,
            "prompt_style": self.prompt_style,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ManagerStep:
        try:
            return cls(
                conversation_id=str(row["conversation_id"]),
                index=int(row["step_index"]),
                num_steps=int(row["num_steps"]),
                turn_ids=list(row["turn_ids"]),
                time=row["time"] or None,
                speaker=str(row["speaker"]),
                dialogue=str(row["dialogue"]),
                facts=[CandidateFact.from_dict(f) for f in json.loads(row["facts"])],
                memories=[MemoryView(**m) for m in json.loads(row["memories"])],
                gold_ops=[GoldOp(**g) for g in json.loads(row["gold_ops"])],
                probes=[Question(**q) for q in json.loads(row["probes"])],
                facts_seen=int(row["facts_seen"]),
                has_gold=bool(row["has_gold"]),
                fact_source=str(row["fact_source"]),
                prompt_style=str(row["prompt_style"]),
                messages=[dict(m) for m in row.get("prompt") or []],
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"malformed manager snapshot row ({row.get('snapshot_id', '?')}): {e!r}") from None


def render_manager_prompt(step: ManagerStep, style: str) -> list[dict[str, str]]:
    """The chat messages of a step in prompt style "compact" or "memory_r1"."""
    mems = [{"text": m.text, "event_time": m.event_time, "observed_at": m.observed_at} for m in step.memories]
    ids = [m.id for m in step.memories]
    if style == "compact_sim":
        # The smallest prompt that still carries the decision, for sub-million-parameter models on CPU: the
        # step's facts, then the related memories, each tagged with how close it is to the facts, as a
        # retriever's similarity would be (Mem0 ranks related memories by similarity). "same": the fact
        # restated; "close": the same subject and relation (a candidate UPDATE/DELETE target: on synthetic
        # data the world key, otherwise word overlap >= 0.6); "far": unrelated. No system prompt and no
        # dialogue: a tiny model cannot learn long-range string comparison in a few hundred CPU steps, and
        # what is left is the decision RL is about (which op, on which memory). Output: the compact op list.
        facts = "\n".join(f"- {f.text}" for f in step.facts) or "(none)"
        lines = [f"[{i}] {_similarity_tag(v, step.facts)}: {m['text']}" for i, m, v in zip(ids, mems, step.memories)]
        return [{"role": "user", "content": f"Facts:\n{facts}\nMemories:\n" + ("\n".join(lines) or "(none)")}]
    if style == "compact":
        dialogue = step.dialogue
        if step.fact_source != "turn" and step.facts:
            dialogue += "\nFacts:\n" + "\n".join(f"- {f.text}" for f in step.facts)
        return render("compact_manager", memories=format_memories_compact(mems, ids), dialogue=dialogue)
    if style == "memory_r1":
        facts = json.dumps([f.text for f in step.facts], ensure_ascii=False)
        return render("memory_r1_manager", memory=format_memories_mem0(mems, ids), facts=facts)
    raise ValueError(f"unknown manager prompt style {style!r}; choose one of {list(MANAGER_PROMPTS)}")


_WORD = re.compile(r"[a-z0-9]+")
_NEGATION_SUFFIX = " (no longer true)"


def _similarity_tag(memory: "MemoryView", facts: Sequence[Any]) -> str:
    mem = memory.text.strip().lower()
    mw = set(_WORD.findall(mem))
    tag = "far"
    for f in facts:
        ft = f.text.strip().lower()
        if ft.endswith(_NEGATION_SUFFIX):
            ft = ft[: -len(_NEGATION_SUFFIX)]
        if ft == mem:
            return "same"
        if memory.key and getattr(f, "entry", None):
            if memory.key == f.entry:
                tag = "close"
            continue
        fw = set(_WORD.findall(ft))
        if mw and fw and len(mw & fw) / len(mw | fw) >= 0.6:
            tag = "close"
    return tag


def messages_text(messages: Sequence[dict[str, str]]) -> str:
    """The observation string: the messages' contents, system first, separated by a blank line."""
    return "\n\n".join(m["content"] for m in messages)


# ---- policies (the interface evaluation swaps) ------------------------------------------------------------
class Manager(Protocol):
    """A memory manager: one completion text per step (the environment parses it)."""

    name: str

    def decide(self, steps: Sequence[ManagerStep]) -> list[str]: ...


class Answerer(Protocol):
    name: str

    def answer(self, requests: Sequence[Any]) -> list[Any]: ...  # AnswerRequest -> AnswerParse


def default_answerer() -> Answerer:
    from memrl.policies.baselines import BM25Answerer  # lazy: policies sit above envs

    return BM25Answerer()


# ---- planning an episode ----------------------------------------------------------------------------------
@dataclass
class _Unit:
    session: Session
    turns: list[Turn]
    facts: list[CandidateFact]
    gold_ops: list[GoldOp]
    end_pos: int  # position of the unit's last turn in the conversation
    linked: list[Question] = field(default_factory=list)


@dataclass
class _Plan:
    units: list[_Unit]
    complete_at: list[tuple[int, int, Question]]  # (evidence completion position, order, question), sorted
    fact_source: str = "gold"  # the extractor actually used ("auto" resolved)


def _skip_question(q: Question, skip: Sequence[str]) -> bool:
    return str(q.category) in skip or str(q.category_id) in skip


def plan_episode(conv: Conversation, config: ManagerEnvConfig) -> _Plan:
    """Units with their facts and gold ops, and when each question's evidence is complete."""
    ops_by_turn = gold_ops_by_turn(conv)
    source = resolve_fact_source(conv, config.facts)
    pos: dict[str, int] = {}
    units: list[_Unit] = []
    for session in conv.sessions:
        for t in session.turns:
            pos[t.turn_id] = len(pos)
        groups = [[t] for t in session.turns] if config.unit == "turn" else ([session.turns] if session.turns else [])
        for turns in groups:
            facts = [f for t in turns for f in extract_facts(conv, t, source, ops_by_turn, config.repeat_facts)]
            if not facts and config.skip_empty:
                continue
            gold = [op for t in turns for op in ops_by_turn.get(t.turn_id, [])]
            units.append(_Unit(session, list(turns), facts, gold, pos[turns[-1].turn_id]))
    ends = [u.end_pos for u in units]
    complete_at = []
    for i, q in enumerate(conv.questions):
        if not q.evidence_turn_ids or _skip_question(q, config.probe_skip_categories):
            continue
        if any(e not in pos for e in q.evidence_turn_ids):
            continue  # unresolved evidence: we cannot tell when it has been seen
        at = max(pos[e] for e in q.evidence_turn_ids)
        complete_at.append((at, i, q))
        k = bisect.bisect_left(ends, at)
        if k < len(units):
            units[k].linked.append(q)
    complete_at.sort(key=lambda x: (x[0], x[1]))
    return _Plan(units, complete_at, source)


def resolve_fact_source(conv: Conversation, facts: str) -> str:
    """"auto" -> "gold" when the conversation has gold ops or extracted facts in turn meta, else "turn"."""
    if facts != "auto":
        return facts
    if conv.gold_ops:
        return "gold"
    has_meta_facts = any(extract_facts(conv, t, "gold") for _, t in conv.turns())
    return "gold" if has_meta_facts else "turn"


def new_bank() -> MemoryBank:
    # The environments retrieve through `TextIndex`; the bank's own bm25s index is never built here.
    return MemoryBank()


# ---- applying one completion ------------------------------------------------------------------------------
@dataclass
class StepOutcome:
    reward: float
    breakdown: dict[str, float]
    parse: ManagerParse
    result: ApplyResult
    info: dict[str, Any]


def parse_step_completion(text: Any, step: ManagerStep) -> tuple[ManagerParse, bool]:
    """Parse a completion; compact ADD/UPDATE items without "text" take the step's single candidate fact.

    Returns (parse, defaulted). Only the completion is parsed: the dialogue never reaches the parser.
    """
    parse = parse_manager_output(text)
    if parse.ok or len(step.facts) != 1 or "needs a 'text'" not in (parse.error or ""):
        return parse, False
    value, recovered, _ = parse_json_lenient(text)
    if isinstance(value, dict) and "ops" in value:
        items = value["ops"]
    elif isinstance(value, list):
        items = value
    elif isinstance(value, dict) and "memory" not in value:
        items = [value]
    else:
        return parse, False
    if not isinstance(items, list):
        return parse, False
    fact = step.facts[0]
    for item in items:
        if isinstance(item, dict) and item.get("text") is None and \
                normalize_op_name(item.get("event", item.get("op", item.get("operation")))) in ("ADD", "UPDATE"):
            item["text"] = fact.text
            if fact.event_time is not None and item.get("event_time", item.get("time")) is None:
                item["event_time"] = fact.event_time
    filled = parse_manager_output(json.dumps(value, ensure_ascii=False))
    filled.recovered = filled.recovered or recovered or parse.recovered
    return filled, filled.ok


def _op_pairs(gold_ops: Sequence[GoldOp], pred: Sequence[tuple[str, str | None]]) -> list[tuple[str, str]]:
    """Pair each gold op with the policy's op on the same world key (NOOP if none); extra ops pair with NOOP."""
    remaining = list(pred)
    pairs = []
    for g in gold_ops:
        if g.op == "NOOP" and not g.entry:
            continue  # chit-chat / third-party news: nothing to agree on
        hit = next((i for i, (_, key) in enumerate(remaining) if key is not None and key == g.entry), None)
        if hit is None:
            pairs.append((g.op, "NOOP"))
        else:
            pairs.append((g.op, remaining.pop(hit)[0]))
    pairs.extend(("NOOP", op) for op, _ in remaining)
    return pairs


def apply_completion(
    bank: MemoryBank,
    index: TextIndex,
    step: ManagerStep,
    text: Any,
    config: ManagerEnvConfig,
    answerer: Answerer | None,
    *,
    score: bool = True,
) -> StepOutcome:
    """Parse `text`, apply it to `bank` (and `index`), and score the step. Mutates bank and index."""
    parse, defaulted = parse_step_completion(text, step)
    comp = CompositeReward(config.weights(), parse_failure=config.format_penalty)
    result = ApplyResult()
    parse_info = {"ok": parse.ok, "error": parse.error, "recovered": parse.recovered, "style": parse.style,
                  "defaulted_text": defaulted, "ops": [op.to_dict() for op in parse.ops]}
    if not parse.ok:
        rr = comp({}, ok=False)
        return StepOutcome(rr.value, dict(rr.breakdown), parse, result,
                           {"parse": parse_info, "rejected": [], "diff": result.diff(), "reward": dict(rr.breakdown),
                            "gold_ops": [asdict(g) for g in step.gold_ops], "op_pairs": [], "probes": [],
                            "bank_size": len(bank)})
    id_map = step.id_map
    # Current entries a written ADD might duplicate, captured before the bank changes (write-side temporal).
    pre_current: list[dict[str, Any]] = []
    if score and step.has_gold:
        add_keys, add_texts = set(), set()
        for op in parse.ops:
            if op.op == "ADD":
                fact, _ = match_fact(op.text, step.facts)
                if fact is not None and fact.entry:
                    add_keys.add(fact.entry)
                add_texts.add(normalize_fact_text(op.text))
        if add_keys or add_texts:
            pre_current = [{"text": e.text, "key": e.key} for e in bank.current()
                           if (e.key is not None and e.key in add_keys) or normalize_fact_text(e.text) in add_texts]
    written: list[dict[str, Any]] = []
    pred: list[tuple[str, str | None]] = []
    for op in parse.ops:
        fact, exact = match_fact(op.text, step.facts) if op.op in ("ADD", "UPDATE") else (None, False)
        if exact and op.event_time is None and fact is not None and fact.event_time is not None:
            op = Op(op.op, op.id, op.text, op.old_text, fact.event_time)
        key = fact.entry if fact is not None else None
        target_key = None
        if op.op in ("UPDATE", "DELETE"):
            target = bank.get(id_map.resolve(op.id) or "")
            target_key = target.key if target is not None else None
        r = bank.apply(
            [op], id_map=id_map, time=step.time,
            source_turn_ids=[fact.turn_id] if fact is not None else step.turn_ids,
            owner=(fact.subject if fact is not None else None) or step.speaker,
            keys={0: key} if op.op == "ADD" and key else None,
        )
        result.applied.extend(r.applied)
        result.rejected.extend(r.rejected)
        result.duplicates.extend(r.duplicates)
        if not r.applied:
            continue
        applied, bank_id = r.applied[0]
        if applied.op == "NOOP":
            continue
        if applied.op == "UPDATE" and key is not None:
            bank.get(bank_id).key = key  # the entry now states this fact
        index.sync(r, bank)
        if applied.op == "ADD":
            pred.append(("ADD", key))
            written.append({"op": "ADD", "text": applied.text, "event_time": applied.event_time, "entry": key})
        elif applied.op == "UPDATE":
            pred.append(("UPDATE", target_key))
            written.append({"op": "UPDATE", "text": applied.text, "event_time": applied.event_time,
                            "entry": key or target_key})
        else:
            pred.append(("DELETE", target_key))
    info: dict[str, Any] = {"parse": parse_info, "rejected": [dict(r.op.to_dict(), reason=r.reason) for r in result.rejected],
                            "diff": result.diff(), "gold_ops": [asdict(g) for g in step.gold_ops],
                            "op_pairs": [], "probes": [], "bank_size": len(bank)}
    if not score:
        info["reward"] = {}
        return StepOutcome(0.0, {}, parse, result, info)

    terms: dict[str, float | RewardResult | None] = {
        "invalid": (invalid_op_penalty(result) or 0.0) if parse.ops else 0.0,  # no -0.0 in logs
        "op": None, "qa": None, "temporal": None,
        "size": -len(bank) / max(1, step.facts_seen + len(step.facts)),
    }
    if step.has_gold:
        pairs = _op_pairs(step.gold_ops, pred)
        info["op_pairs"] = [list(p) for p in pairs]
        terms["op"] = sum(g == p for g, p in pairs) / len(pairs) if pairs else 1.0
        terms["temporal"] = write_temporal_reward(written, step.gold_ops, pre_current)
    if step.probes and config.w_qa != 0:
        from memrl.envs.answer_env import AnswerRequest, memory_candidates

        answerer = answerer if answerer is not None else default_answerer()
        requests = [AnswerRequest(q, memory_candidates(bank, index, q.question, config.probe_k), mode="compact")
                    for q in step.probes]
        parses = answerer.answer(requests)
        scores = []
        for q, p in zip(step.probes, parses):
            pred_answer = p.answer if getattr(p, "ok", False) else None
            s = accuracy(pred_answer, q.answer, config.qa_metric, category_id=q.category_id)
            scores.append(s)
            info["probes"].append({"question_id": q.question_id, "question": q.question, "answer": q.answer,
                                   "prediction": pred_answer, "score": s})
        terms["qa"] = sum(scores) / len(scores)
    rr = comp(terms)
    info["reward"] = dict(rr.breakdown)
    return StepOutcome(rr.value, dict(rr.breakdown), parse, result, info)


# ---- an episode without gym (used by the env, the snapshot exporter and evaluation) ------------------------
class ManagerEpisode:
    """The state of one conversation being written into memory: bank, retrieval index, cursor."""

    def __init__(self, conv: Conversation, config: ManagerEnvConfig, answerer: Answerer | None = None,
                 seed: int = 0, plan: _Plan | None = None):
        self.conv = conv
        self.config = config
        self.answerer = answerer
        self.seed = seed
        self.plan = plan if plan is not None else plan_episode(conv, config)
        self.bank = new_bank()
        self.index = TextIndex()
        self.cursor = 0
        self.facts_seen = 0
        self._step: ManagerStep | None = None
        self.totals: dict[str, list[float]] = {}

    @property
    def done(self) -> bool:
        return self.cursor >= len(self.plan.units)

    def _probes(self, unit: _Unit) -> list[Question]:
        cfg = self.config
        if cfg.probes == "none" or cfg.max_probes == 0:
            return []
        if cfg.probes == "linked":
            pool = unit.linked
        else:
            k = bisect.bisect_right([c[0] for c in self.plan.complete_at], unit.end_pos)
            pool = [q for _, _, q in self.plan.complete_at[:k]]
        if len(pool) <= cfg.max_probes:
            return list(pool)
        rng = random.Random(f"{self.seed}:{self.conv.conversation_id}:{self.cursor}")
        return [pool[i] for i in sorted(rng.sample(range(len(pool)), cfg.max_probes))]

    def _related(self, facts: list[CandidateFact]) -> list[str]:
        cfg = self.config
        chosen: dict[str, None] = {}
        if cfg.include_key_matches and any(f.entry for f in facts):
            keys = {f.entry for f in facts if f.entry}
            for e in self.bank.current():
                if e.key in keys:
                    chosen[e.id] = None
        for f in facts:
            owner = f.subject if cfg.related_per_owner else None
            for bid, _ in self.index.search(f.text, cfg.related_k, owner=owner):
                chosen.setdefault(bid, None)
        ids = list(chosen)[: cfg.max_related]
        if cfg.memory_order == "relevance":
            return ids
        return sorted(ids, key=self.index.order_of)

    def observe(self) -> ManagerStep:
        """The current step (built once per step)."""
        if self.done:
            raise RuntimeError("episode is over")
        if self._step is not None:
            return self._step
        unit = self.plan.units[self.cursor]
        memories = []
        for i, bid in enumerate(self._related(unit.facts)):
            e = self.bank.get(bid)
            memories.append(MemoryView(str(i), bid, e.text, e.owner, e.key, e.observed_at, e.event_time))
        step = ManagerStep(
            conversation_id=self.conv.conversation_id, index=self.cursor, num_steps=len(self.plan.units),
            turn_ids=[t.turn_id for t in unit.turns], time=unit.session.timestamp, speaker=unit.turns[0].speaker,
            dialogue=format_turns(unit.turns, unit.session.timestamp), facts=list(unit.facts), memories=memories,
            gold_ops=list(unit.gold_ops), probes=self._probes(unit), facts_seen=self.facts_seen,
            has_gold=bool(self.conv.gold_ops), fact_source=self.plan.fact_source, prompt_style=self.config.prompt,
        )
        step.messages = render_manager_prompt(step, self.config.prompt)
        self._step = step
        return step

    def apply(self, text: Any, score: bool = True) -> StepOutcome:
        step = self.observe()
        outcome = apply_completion(self.bank, self.index, step, text, self.config, self.answerer, score=score)
        self.facts_seen += len(step.facts)
        self.cursor += 1
        self._step = None
        for k, v in outcome.breakdown.items():
            self.totals.setdefault(k, []).append(float(v))
        self.totals.setdefault("reward", []).append(outcome.reward)
        return outcome

    def summary(self) -> dict[str, Any]:
        """Means of every reward term over the steps so far, plus the bank size."""
        out: dict[str, Any] = {k: sum(v) / len(v) for k, v in self.totals.items() if v}
        out.update(conversation_id=self.conv.conversation_id, steps=self.cursor, bank_size=len(self.bank),
                   bank_versions=self.bank.num_versions)
        return out


def drive(
    conversations: Sequence[Conversation],
    manager: Manager,
    config: ManagerEnvConfig | dict | None = None,
    answerer: Answerer | None = None,
    *,
    score: bool = True,
    before_apply: Callable[[ManagerEpisode, ManagerStep], None] | None = None,
    after_apply: Callable[[ManagerEpisode, ManagerStep, StepOutcome], None] | None = None,
    seed: int = 0,
) -> list[ManagerEpisode]:
    """Run a manager over conversations in lockstep: one `decide` call per round over every unfinished
    episode (so LLM managers generate in batches). Returns the finished episodes (bank, summary)."""
    cfg = as_manager_config(config)
    episodes = [ManagerEpisode(c, cfg, answerer, seed=seed) for c in conversations]
    while True:
        live = [ep for ep in episodes if not ep.done]
        if not live:
            return episodes
        steps = [ep.observe() for ep in live]
        texts = manager.decide(steps)
        if len(texts) != len(steps):
            raise ValueError(f"manager {getattr(manager, 'name', manager)!r} returned {len(texts)} completions "
                             f"for {len(steps)} steps")
        for ep, step, text in zip(live, steps, texts):
            if before_apply is not None:
                before_apply(ep, step)
            outcome = ep.apply(text, score=score)
            if after_apply is not None:
                after_apply(ep, step, outcome)


# ---- gymnasium ----------------------------------------------------------------------------------------------
class UnicodeText(spaces.Text):
    """A Text space for prompts and completions: any Unicode string up to `max_length` is a member.

    gymnasium's Text checks membership against a finite charset; dialogue has emoji, accents and curly
    quotes, so membership here is "a str of allowed length". `sample()` draws printable ASCII (a random
    completion is simply a format failure).
    """

    def __init__(self, max_length: int, min_length: int = 0, seed: int | None = None):
        super().__init__(max_length=max_length, min_length=min_length, charset=string.printable, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"UnicodeText({self.min_length}, {self.max_length})"


def _completion_text(action: Any) -> str:
    from memrl.rewards.trl_adapters import completion_text

    return completion_text(action)


def load_conversations(conversations: Any) -> list[Conversation]:
    """A list of Conversations, a path to JSONL / a `datasets` directory, or None (a small synthetic set)."""
    if conversations is None:
        return default_conversations()
    if isinstance(conversations, Conversation):
        return [conversations]
    if isinstance(conversations, (str, bytes)) or hasattr(conversations, "__fspath__"):
        import os

        from memrl.data.io import read_conversations, read_hf

        path = os.fspath(conversations)
        return read_hf(path) if os.path.isdir(path) else read_conversations(path)
    convs = list(conversations)
    if not convs or not all(isinstance(c, Conversation) for c in convs):
        raise ValueError("conversations must be a non-empty list of memrl.data.schema.Conversation")
    from memrl.data.validate import validate_conversations

    return validate_conversations(convs, "conversations")


def default_conversations() -> list[Conversation]:
    """A few seeded synthetic conversations, so `gymnasium.make("memrl/...")` works without arguments."""
    from memrl.data_synth.config import SynthConfig
    from memrl.data_synth.synth import synthesize_conversation

    cfg = SynthConfig(seed=0)
    return [synthesize_conversation(cfg, i) for i in range(4)]


class MemoryManagerEnv(gym.Env):
    """gymnasium env `memrl/MemoryManager-v0`. Observation: the prompt text; action: the completion text.

    reset(seed, options={"conversation_index": i}) starts conversation i (default: drawn with the seeded
    np_random). info carries the chat `messages`, the structured `step` (ManagerStep) and, after a step,
    the parse, rejected ops with reasons, the bank diff, gold ops, op pairs, probe answers and the reward
    breakdown. An empty string is the observation after the last step.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(self, conversations: Any = None, config: ManagerEnvConfig | dict | None = None,
                 answerer: Answerer | None = None, render_mode: str | None = None):
        self.conversations = load_conversations(conversations)
        self.config = as_manager_config(config)
        self.answerer = answerer if answerer is not None else default_answerer()
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode {render_mode!r} not in {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.observation_space = UnicodeText(self.config.max_observation_chars)
        self.action_space = UnicodeText(self.config.max_action_chars)
        self._plans: dict[int, _Plan] = {}
        self.episode: ManagerEpisode | None = None
        self._last_obs = ""

    def _plan(self, i: int) -> _Plan:
        if i not in self._plans:
            self._plans[i] = plan_episode(self.conversations[i], self.config)
        return self._plans[i]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        if "conversation_index" in options:
            i = int(options["conversation_index"])
            if not 0 <= i < len(self.conversations):
                raise IndexError(f"conversation_index {i} out of range (0..{len(self.conversations) - 1})")
            if not self._plan(i).units:
                raise ValueError(f"conversation {self.conversations[i].conversation_id!r} has no step with "
                                 f"candidate facts (facts={self.config.facts!r})")
        else:
            eligible = [j for j in range(len(self.conversations)) if self._plan(j).units]
            if not eligible:
                raise ValueError(f"no conversation has a step with candidate facts (facts={self.config.facts!r})")
            i = eligible[int(self.np_random.integers(len(eligible)))]
        episode_seed = int(self.np_random.integers(2**31 - 1))
        self.episode = ManagerEpisode(self.conversations[i], self.config, self.answerer, seed=episode_seed,
                                      plan=self._plan(i))
        step = self.episode.observe()
        self._last_obs = messages_text(step.messages)
        return self._last_obs, {"messages": [dict(m) for m in step.messages], "step": step,
                                "conversation_index": i, "conversation_id": step.conversation_id}

    def step(self, action: Any):
        if self.episode is None or self.episode.done:
            raise RuntimeError("step() called before reset() or after the episode ended")
        outcome = self.episode.apply(_completion_text(action))
        terminated = self.episode.done
        info = dict(outcome.info)
        if terminated:
            self._last_obs = ""
            info.update(messages=[], step=None, episode=self.episode.summary())
        else:
            nxt = self.episode.observe()
            self._last_obs = messages_text(nxt.messages)
            info.update(messages=[dict(m) for m in nxt.messages], step=nxt)
        return self._last_obs, float(outcome.reward), bool(terminated), False, info

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self._last_obs
        return None


# ---- GRPO snapshots -------------------------------------------------------------------------------------------
def snapshot_dataset(
    conversations: Sequence[Conversation],
    config: ManagerEnvConfig | dict | None = None,
    manager: Manager | None = None,
    *,
    every: int = 1,
    max_probes: int | None = None,
    seed: int = 0,
):
    """A `datasets.Dataset` of manager states: one row per `every`-th step of each conversation.

    The bank of each row is what `manager` (default: the gold-op replayer on conversations with gold ops,
    else add-only) built over the earlier steps. Columns: `prompt` (chat messages), `bank_json`, the step
    (`ManagerStep.to_row`: facts, memories, id_map, gold ops, probes ... as JSON strings), `snapshot_id`,
    `builder`. Feed rows to `score_manager_completion` (or `ManagerSnapshotReward` in TRL).
    """
    import datasets

    from memrl.policies.baselines import AddOnlyManager, GoldOpsManager

    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    cfg = as_manager_config(config)
    if max_probes is not None:
        cfg = ManagerEnvConfig(**{**asdict(cfg), "max_probes": int(max_probes)})
    rows: list[dict[str, Any]] = []

    def record(ep: ManagerEpisode, step: ManagerStep, builder_name: str) -> None:
        if step.index % every:
            return
        row = step.to_row()
        row["bank_json"] = json.dumps(ep.bank.to_dict(), ensure_ascii=False)
        row["builder"] = builder_name
        row["snapshot_id"] = f"{step.conversation_id}:{step.index}:{builder_name}:{seed}"
        rows.append(row)

    groups: dict[str, list[Conversation]] = {}
    builders: dict[str, Manager] = {}
    for conv in conversations:
        b = manager if manager is not None else (GoldOpsManager() if conv.gold_ops else AddOnlyManager())
        builders[b.name] = b
        groups.setdefault(b.name, []).append(conv)
    for name, convs in groups.items():
        drive(convs, builders[name], cfg, score=False, seed=seed,
              before_apply=lambda ep, st, _n=name: record(ep, st, _n))
    rows.sort(key=lambda r: (r["conversation_id"], r["step_index"]))
    return datasets.Dataset.from_list(rows)


_SNAPSHOTS: OrderedDict[tuple[str, int], tuple[MemoryBank, TextIndex, ManagerStep]] = OrderedDict()
_SNAPSHOT_CACHE_SIZE = 512


def _snapshot_state(row: dict[str, Any]) -> tuple[MemoryBank, TextIndex, ManagerStep]:
    key = (str(row.get("snapshot_id", "")), len(row["bank_json"]))
    hit = _SNAPSHOTS.get(key)
    if hit is not None and key[0]:
        _SNAPSHOTS.move_to_end(key)
        return hit
    try:
        bank = MemoryBank.from_dict(json.loads(row["bank_json"]))
    except (ValueError, TypeError) as e:
        raise ValueError(f"snapshot {key[0] or '?'}: bad bank_json: {e}") from None
    state = (bank, TextIndex.from_bank(bank), ManagerStep.from_row(row))
    if key[0]:
        _SNAPSHOTS[key] = state
        if len(_SNAPSHOTS) > _SNAPSHOT_CACHE_SIZE:
            _SNAPSHOTS.popitem(last=False)
    return state


def rebuild_snapshot(row: dict[str, Any]) -> tuple[MemoryBank, TextIndex, ManagerStep]:
    """A fresh (bank, index, step) for a snapshot row; callers may mutate them."""
    bank, index, step = _snapshot_state(row)
    return bank.copy(), index.fork(), step


def score_manager_completion(
    completion_text: Any,
    row: dict[str, Any],
    config: ManagerEnvConfig | dict | None = None,
    answerer: Answerer | None = None,
) -> tuple[float, dict[str, float]]:
    """Reward (and breakdown) of one manager completion applied to a snapshot row's state.

    The parsed state of a row is cached by `snapshot_id`, so the G samples of a GRPO group pay for the
    JSON once; each call applies to a copy. No torch import on this path.
    """
    cfg = config if isinstance(config, ManagerEnvConfig) else as_manager_config(config)
    bank, index, step = rebuild_snapshot(row)
    outcome = apply_completion(bank, index, step, completion_text, cfg,
                               answerer if answerer is not None else _default_answerer_cached())
    return outcome.reward, outcome.breakdown


_ANSWERER: Answerer | None = None


def _default_answerer_cached() -> Answerer:
    global _ANSWERER
    if _ANSWERER is None:
        _ANSWERER = default_answerer()
    return _ANSWERER


class ManagerSnapshotReward:
    """TRL reward function over `snapshot_dataset` rows: `f(prompts, completions, **columns) -> rewards`."""

    def __init__(self, config: ManagerEnvConfig | dict | None = None, answerer: Answerer | None = None,
                 name: str = "manager_reward"):
        self.config = as_manager_config(config)
        self.answerer = answerer
        self.__name__ = name

    def __call__(self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] | None = None,
                 **columns: Any) -> list[float | None]:
        completions = list(completions or [])
        n = len(completions)
        cols = {k: v for k, v in columns.items() if isinstance(v, (list, tuple)) and len(v) == n}
        out: list[float | None] = []
        sums: dict[str, list[float]] = {}
        for i, c in enumerate(completions):
            row = {k: v[i] for k, v in cols.items()}
            if "bank_json" not in row:
                out.append(None)
                continue
            reward, breakdown = score_manager_completion(_completion_text(c), row, self.config, self.answerer)
            out.append(reward)
            for k, v in breakdown.items():
                sums.setdefault(k, []).append(v)
        log_metric = columns.get("log_metric")
        if callable(log_metric):
            for k, vs in sums.items():
                log_metric(f"{self.__name__}/{k}", sum(vs) / len(vs))
        return out


# ---- benchmark ------------------------------------------------------------------------------------------------
def benchmark_env_step(
    conversation: Conversation,
    steps: int | None = None,
    config: ManagerEnvConfig | dict | None = None,
    manager: Manager | None = None,
    snapshot_calls: int = 200,
) -> dict[str, Any]:
    """Median wall time of `env.step` (parse + apply + reward + next observation) with the heuristic
    answerer, excluding the policy: the manager's completions are computed first, outside the timer.
    Also times `score_manager_completion` on snapshot rows of the same conversation (`snapshot_calls`
    rows spread over the conversation, each after a first call that parses and caches the row). Wall
    times and process CPU times (`cpu_*`, less sensitive to other processes on a shared machine).
    """
    from memrl.policies.baselines import AddOnlyManager, GoldOpsManager

    cfg = as_manager_config(config)
    manager = manager or (GoldOpsManager() if conversation.gold_ops else AddOnlyManager())
    env = MemoryManagerEnv([conversation], cfg)
    env.reset(seed=0, options={"conversation_index": 0})
    wall: list[float] = []
    cpu: list[float] = []
    probes = 0
    assert env.episode is not None
    while not env.episode.done and (steps is None or len(wall) < steps):
        text = manager.decide([env.episode.observe()])[0]
        t0, c0 = _time.perf_counter(), _time.process_time()
        _, _, _, _, info = env.step(text)
        wall.append(_time.perf_counter() - t0)
        cpu.append(_time.process_time() - c0)
        probes += len(info["probes"])
    ds = snapshot_dataset([conversation], cfg, manager)
    rows = [ds[i] for i in range(len(ds))]
    completions = [manager.decide([ManagerStep.from_row(r)])[0] for r in rows]
    for r, c in zip(rows, completions):  # first call per row parses the JSON (cached afterwards, as in GRPO)
        score_manager_completion(c, r, cfg)
    snap: list[float] = []
    n = min(snapshot_calls, len(rows)) if rows else 0
    for j in range(n):  # rows spread over the whole conversation: small and large banks alike
        i = j * len(rows) // n
        t0 = _time.perf_counter()
        score_manager_completion(completions[i], rows[i], cfg)
        snap.append(_time.perf_counter() - t0)

    def stats(xs: list[float], name: str) -> dict[str, float]:
        ms = sorted(x * 1e3 for x in xs)
        if not ms:
            return {f"{name}median_ms": 0.0, f"{name}p90_ms": 0.0}
        return {f"{name}median_ms": statistics.median(ms), f"{name}p90_ms": ms[int(0.9 * (len(ms) - 1))],
                f"{name}mean_ms": statistics.fmean(ms)}

    return {
        "conversation_id": conversation.conversation_id,
        "steps": len(wall),
        **stats(wall, ""),
        **stats(cpu, "cpu_"),
        "bank_size": len(env.episode.bank),
        "probes_per_step": probes / max(1, len(wall)),
        **stats(snap, "snapshot_score_"),
        "manager": manager.name,
        "facts": cfg.facts,
        "unit": cfg.unit,
    }

"""The memory-manager environment: one conversation per episode, one unit (turn or session) per step.

    step k:  observation = prompt(unit k's dialogue, its candidate facts, the related memories with
             per-prompt ids)  ->  action = the policy's completion  ->  parse, apply to the versioned bank,
             reward = weighted terms (below), info = structured state

Reward terms (weights in `ManagerEnvConfig`, summed by `memrl.rewards.CompositeReward`):
- format:   output that does not parse scores `format_penalty` (-1) and nothing else; the bank is unchanged.
- invalid:  -(rejected ops / ops), e.g. an UPDATE naming an id that was not in the prompt (Mem0's KeyError
            class of bug, anchors section 5.4) is rejected, reported in info, never applied elsewhere.
- op:       ORACLE term (w_op = 0 by default; on in `ManagerEnvConfig.oracle()` and labeled ablations):
            agreement with the gold ops of the unit (synthetic data): each gold op is paired with the
            policy's op on the same world key (gold facts) or in order (the default turn view, whose
            memories carry no key), each extra op of the policy with a gold NOOP; the term is
            the share of pairs whose op types agree. The pairs are always in info (op accuracy in eval).
            World keys of bank entries are set from the facts: an ADD / UPDATE whose text states a
            candidate fact labels its entry with that fact's key.
- qa:       Memory-R1's outcome reward: probe questions answered by a frozen answerer over the bank
            after the step, scored with `qa_metric`. "linked" probes are the questions whose evidence
            completes at this unit (Memory-R1 pairs each turn with its QA pairs); "complete" samples among
            all questions whose evidence has been seen.
- temporal: ORACLE term (w_temporal = 0 by default), built from gold ops:
            `rewards.temporal.write_temporal_reward` (event times stored, superseded facts closed by an
            UPDATE instead of duplicated by an ADD, no duplicate of a current memory).
- size:     Mem-alpha's compression term, -len(bank) / max(1, candidate facts seen so far).

Terms that do not apply (no gold ops on real data, no probe at this step) are left out, not counted as 0.

What the policy decides and what the environment fills in: the policy names an op, for UPDATE/DELETE a
prompt id, and for ADD/UPDATE the memory text it writes (extraction and operation, as in Mem0 and
Memory-R1). Compact ADD/UPDATE items may omit `text` when the step has exactly one candidate fact: the
fact is used (text and event time; under the default turn view, the raw turn), so a tiny model can act by
choosing op + id. An op whose text is a
candidate fact verbatim inherits that fact's event time (extractors return times with facts, as Mem0 stores
metadata). The owner of a new memory is the fact's subject when known, else the speaker.

GRPO needs samples that start from the same memory state: `memrl.train.snapshots.snapshot_dataset` exports (prompt, bank JSON,
step) rows and `memrl.train.snapshots.score_manager_completion` rebuilds the state, applies one completion and scores it through
the same `apply_completion` the environment uses.
"""

from __future__ import annotations

import bisect
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from memrl.data.schema import Conversation, GoldOp, Question, Session, Turn
from memrl.envs.manager.config import ManagerEnvConfig, as_manager_config
from memrl.memory.bank import MemoryBank
from memrl.memory.index import TextIndex
from memrl.memory.ops import ApplyResult, Op, normalize_op_name
from memrl.protocol.facts import (
    CandidateFact,
    extract_facts,
    gold_ops_by_turn,
    match_fact,
    normalize_fact_text,
)
from memrl.protocol.json_repair import parse_json_lenient
from memrl.protocol.parsing import ManagerParse, parse_manager_output
from memrl.protocol.prompts import format_turns
from memrl.protocol.steps import (
    DEFAULT_ANSWER_MODE,
    Answerer,
    AnswerRequest,
    Manager,
    ManagerStep,
    MemoryView,
    memory_candidates,
    render_manager_prompt,
)
from memrl.rewards.accuracy import accuracy
from memrl.rewards.base import RewardResult
from memrl.rewards.composite import CompositeReward
from memrl.rewards.format import invalid_op_penalty
from memrl.rewards.temporal import write_temporal_reward


# ---- planning an episode ----------------------------------------------------------------------------------
@dataclass
class Unit:
    session: Session
    turns: list[Turn]
    facts: list[CandidateFact]
    gold_ops: list[GoldOp]
    end_pos: int  # position of the unit's last turn in the conversation
    linked: list[Question] = field(default_factory=list)


@dataclass
class Plan:
    units: list[Unit]
    complete_at: list[tuple[int, int, Question]]  # (evidence completion position, order, question), sorted
    fact_source: str = "gold"  # the extractor actually used ("auto" resolved)


def _skip_question(q: Question, skip: Sequence[str]) -> bool:
    return str(q.category) in skip or str(q.category_id) in skip


def plan_episode(conv: Conversation, config: ManagerEnvConfig) -> Plan:
    """Units with their facts and gold ops, and when each question's evidence is complete."""
    ops_by_turn = gold_ops_by_turn(conv)
    source = resolve_fact_source(conv, config.facts)
    pos: dict[str, int] = {}
    units: list[Unit] = []
    for session in conv.sessions:
        for t in session.turns:
            pos[t.turn_id] = len(pos)
        groups = [[t] for t in session.turns] if config.unit == "turn" else ([session.turns] if session.turns else [])
        for turns in groups:
            facts = [f for t in turns for f in extract_facts(conv, t, source, ops_by_turn, config.repeat_facts)]
            if not facts and config.skip_empty:
                continue
            gold = [op for t in turns for op in ops_by_turn.get(t.turn_id, [])]
            units.append(Unit(session, list(turns), facts, gold, pos[turns[-1].turn_id]))
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
    return Plan(units, complete_at, source)


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


def _op_pairs_in_order(gold_ops: Sequence[GoldOp], pred: Sequence[tuple[str, str | None]]) -> list[tuple[str, str]]:
    """The turn view's pairing: the unit's gold ops (those with something to agree on) and the policy's ops in
    order; the longer list's rest pairs with NOOP."""
    gold = [g.op for g in gold_ops if g.op != "NOOP" or g.entry]
    ops = [op for op, _ in pred]
    n = max(len(gold), len(ops))
    return [(gold[i] if i < len(gold) else "NOOP", ops[i] if i < len(ops) else "NOOP") for i in range(n)]


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
        # Scoring only (never the prompt): with gold facts, ops pair with gold ops by the world key of the fact
        # they state; under the default turn view memories carry no key, so the step's ops pair in order.
        pairs = _op_pairs(step.gold_ops, pred) if step.fact_source != "turn" else _op_pairs_in_order(step.gold_ops, pred)
        info["op_pairs"] = [list(p) for p in pairs]
        # Gold-label terms enter the reward only when weighted (the oracle preset or a labeled ablation); the
        # op pairs stay in info for op-accuracy diagnostics.
        if config.w_op:
            terms["op"] = sum(g == p for g, p in pairs) / len(pairs) if pairs else 1.0
        if config.w_temporal:
            terms["temporal"] = write_temporal_reward(written, step.gold_ops, pre_current)
    if step.probes and config.w_qa != 0:

        if answerer is None:
            raise ValueError("probe questions need a frozen answerer: pass answerer= (e.g. "
                             "memrl.policies.baselines.BM25Answerer()), or probes='none'")
        requests = [AnswerRequest(q, memory_candidates(bank, index, q.question, config.probe_k),
                                  answer_mode=DEFAULT_ANSWER_MODE)
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
                 seed: int = 0, plan: Plan | None = None):
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

    def _probes(self, unit: Unit) -> list[Question]:
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


def drive_manager(
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



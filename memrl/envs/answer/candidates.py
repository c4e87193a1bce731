"""The answer / context-picker environment: one step over a question and its candidates.

The answer mode (`AnswerEnvConfig.answer_mode`, a mode of `memrl.protocol.modes`) decides the prompt, the
parser, what candidates="auto" means and the reward preset; each mode's file there describes its task
(memory_r1, compact, picker, select, memory_t1, short). This module builds the candidates the mode reads:
memories of a bank built by the manager passed in (top-k per speaker, bank order or by relevance), turns, or
sessions filtered to the question's time window and ranked with BM25.

Candidate construction is configurable and seeded: top-k per speaker, time filter, `include_gold` (make
sure the gold evidence is offered, for training), `shuffle`, and a `budget` (gold kept first when the list
is cut). Rewards go through `memrl.rewards.trl_adapters.AnswerReward.score` on the same row dict that
`answer_dataset` exports, so the environment and GRPO's reward functions cannot disagree.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from memrl.data.schema import Conversation, Question, Session
from memrl.envs.answer.config import AnswerEnvConfig, as_answer_config
from memrl.envs.manager.episode import drive_manager, plan_episode
from memrl.memory.bank import MemoryBank
from memrl.memory.index import TextIndex
from memrl.protocol import modes
from memrl.protocol.add_only import AddOnlyManager
from memrl.protocol.reader import extract_answer
from memrl.protocol.steps import AnswerRequest, Candidate, Manager, memory_candidates, sessions_by_id
from memrl.rewards.temporal import MEMORY_T1_UNKNOWN_DEFAULTS, parse_date_span
from memrl.rewards.trl_adapters import make_answer_reward


# ---- candidate construction ---------------------------------------------------------------------------------
def _in_range(time: str | None, time_range: Any) -> bool:
    """Day-granular membership of a session time in [start, end]; unknown ends are open."""
    if not time_range:
        return True
    span = parse_date_span(time)
    if span is None:
        return True
    start = parse_date_span(time_range[0]) if len(time_range) > 0 else None
    end = parse_date_span(time_range[1]) if len(time_range) > 1 else None
    return (start is None or span[1] >= start[0]) and (end is None or span[0] <= end[1])


def _session_doc(s: Session) -> str:
    return "\n".join(f"{t.speaker}: {t.text}" for t in s.turns)


def _events(session: Session) -> list[dict[str, Any]]:
    """A uniform (Arrow-friendly) event list per utterance for Memory-T1's R_f."""
    utts = []
    for t in session.turns:
        events = []
        meta = t.meta or {}
        for ev in meta.get("events") or []:
            if isinstance(ev, dict):
                et = ev.get("event_time", ev.get("time"))
                et = list(et) if isinstance(et, (list, tuple)) else [et, et]
                events.append({"event_summary": str(ev.get("event_summary", ev.get("summary", ev.get("text", t.text)))),
                               "event_time": [None if x is None else str(x) for x in et[:2]]})
        if not events and meta.get("event_time") is not None:
            et = meta["event_time"]
            et = list(et) if isinstance(et, (list, tuple)) else [et, et]
            events.append({"event_summary": t.text, "event_time": [None if x is None else str(x) for x in et[:2]]})
        utts.append({"text": t.text, "events": events})
    return utts


def session_records(conv: Conversation, session_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Sessions as the temporal reward reads them: id, time, utterances with events."""
    by_id = sessions_by_id(conv)
    return [{"session_id": sid, "session_time": by_id[sid].timestamp or "", "utterances": _events(by_id[sid])}
            for sid in session_ids if sid in by_id]


class _ConversationState:
    """Per-conversation caches: indexes over turns and sessions, banks by cutoff step."""

    def __init__(self, conv: Conversation):
        self.conv = conv
        self.turn_index: TextIndex | None = None
        self.session_index: TextIndex | None = None
        self.banks: dict[int | None, tuple[MemoryBank, TextIndex]] = {}  # cutoff step (None = final)


def _cutoff(step_times: list[str | None], question_time: str | None) -> int | None:
    """Index of the last step at or before the question time; None means "after the last step"."""
    if question_time is None or not step_times:
        return None
    last = None
    for i, t in enumerate(step_times):
        if t is None or t <= question_time:
            last = i
    if last is None or last == len(step_times) - 1:
        return None
    return last


class CandidateBuilder:
    """Builds `AnswerRequest`s and dataset rows for questions of a set of conversations."""

    def __init__(self, conversations: Sequence[Conversation], config: AnswerEnvConfig,
                 manager: Manager | Callable[[Conversation], Manager] | None = None, on_bank_step: Any = None):
        self.conversations = list(conversations)
        self.config = config
        self.manager = manager
        # Evaluation's hook: called as drive's after_apply while a bank is built, which is then scored (op
        # pairs, rejections), so op-level metrics need no second pass over the conversation.
        self.on_bank_step = on_bank_step
        self._state: dict[int, _ConversationState] = {}

    def _st(self, ci: int) -> _ConversationState:
        if ci not in self._state:
            self._state[ci] = _ConversationState(self.conversations[ci])
        return self._state[ci]

    def _manager_for(self, conv: Conversation) -> Manager:
        """The manager that writes this conversation's bank: passed in, never looked up here (a Manager, or a
        function of the conversation such as `memrl.policies.baselines.bank_builder(config.manager)`). Without
        one, the config's default "add_only" needs no policy (every candidate fact stored as said); any other
        `config.manager` must be passed in."""
        if self.manager is None:
            if self.config.manager == "add_only":
                return AddOnlyManager()
            raise ValueError(f"memory candidates need the manager that builds the banks (manager="
                             f"{self.config.manager!r}): pass manager= (e.g. "
                             "memrl.policies.baselines.bank_builder(config.manager))")
        return self.manager if hasattr(self.manager, "decide") else self.manager(conv)

    def _build_banks(self, ci: int) -> None:
        st = self._st(ci)
        conv = st.conv
        manager = self._manager_for(conv)
        cfg = self.config.bank
        if getattr(manager, "reads_gold", False):
            # An oracle bank (gold_ops, noisy_teacher, rule_based with keys) needs the gold facts and key
            # matches; it is named as an oracle, and results.json flags it (memrl.eval.notes).
            cfg = cfg.for_oracle_manager()
        plan = plan_episode(conv, cfg)
        times = [u.session.timestamp for u in plan.units]
        needed = {_cutoff(times, q.question_time) for q in conv.questions} - {None}
        snaps: dict[int | None, tuple[MemoryBank, TextIndex]] = {}

        def after(ep, step, outcome) -> None:
            if self.on_bank_step is not None:
                self.on_bank_step(ep, step, outcome)
            if step.index in needed:
                snaps[step.index] = (ep.bank.copy(), ep.index.fork())

        (ep,) = drive_manager([conv], manager, cfg, score=self.on_bank_step is not None, after_apply=after)
        snaps[None] = (ep.bank, ep.index)
        st.banks = snaps
        st.bank_times = times  # type: ignore[attr-defined]

    def bank_for(self, ci: int, question: Question) -> tuple[MemoryBank, TextIndex]:
        st = self._st(ci)
        if not st.banks:
            self._build_banks(ci)
        return st.banks[_cutoff(st.bank_times, question.question_time)]  # type: ignore[attr-defined]

    def _turn_candidates(self, ci: int, q: Question) -> list[Candidate]:
        st = self._st(ci)
        if st.turn_index is None:
            st.turn_index = TextIndex.from_docs(
                (t.turn_id, f"{t.speaker}: {t.text}", t.speaker) for _, t in st.conv.turns())
        turns = st.conv.turn_index()
        out = []
        for tid, score in st.turn_index.search_per_owner(q.question, self.config.k_per_speaker):
            s, t = turns[tid]
            if q.question_time and s.timestamp and s.timestamp > q.question_time:
                continue  # said after the question was asked
            out.append(Candidate("", f"{t.speaker}: {t.text}", s.timestamp, None, t.speaker, [tid], tid, score))
        if self.config.include_gold:
            have = {c.doc_id for c in out}
            for tid in q.evidence_turn_ids:
                if tid in turns and tid not in have:
                    s, t = turns[tid]
                    out.append(Candidate("", f"{t.speaker}: {t.text}", s.timestamp, None, t.speaker, [tid], tid, None))
        return out

    def _session_candidates(self, ci: int, q: Question) -> tuple[list[Candidate], bool]:
        st = self._st(ci)
        sessions = [s for s in st.conv.sessions if s.turns and not (
            q.question_time and s.timestamp and s.timestamp > q.question_time)]  # not yet said when asked
        kept = [s for s in sessions if _in_range(s.timestamp, q.time_range)] if self.config.time_filter else sessions
        filtered_out_all = not kept
        kept = kept or sessions
        index = TextIndex.from_docs((s.session_id, _session_doc(s), None) for s in kept)
        hits = index.search(q.question, self.config.top_k_sessions)
        by_id = {s.session_id: s for s in kept}
        out = [Candidate("", _session_doc(by_id[sid]), by_id[sid].timestamp, None, None,
                         [t.turn_id for t in by_id[sid].turns], sid, score) for sid, score in hits]
        if self.config.include_gold:
            have = {c.doc_id for c in out}
            all_by_id = sessions_by_id(st.conv)
            for sid in q.evidence_session_ids:
                if sid in all_by_id and sid not in have and all_by_id[sid].turns:
                    s = all_by_id[sid]
                    out.append(Candidate("", _session_doc(s), s.timestamp, None, None, [t.turn_id for t in s.turns], sid))
        return out, filtered_out_all

    def request(self, ci: int, qi: int, seed: int | None = None) -> tuple[AnswerRequest, dict[str, Any]]:
        """The request and the dataset row for question `qi` of conversation `ci`."""
        cfg = self.config
        conv = self.conversations[ci]
        q = conv.questions[qi]
        source = cfg.candidate_source()
        notes: dict[str, Any] = {}
        if source == "memories":
            bank, index = self.bank_for(ci, q)
            cands = memory_candidates(bank, index, q.question, cfg.k_per_speaker)
            if cfg.include_gold:
                have = {c.doc_id for c in cands}
                ev = set(q.evidence_turn_ids)
                for e in bank.current():
                    if e.id not in have and ev & set(e.source_turn_ids):
                        cands.append(Candidate("", e.text, e.observed_at, e.event_time, e.owner, list(e.source_turn_ids),
                                               e.id, None))
                cands.sort(key=lambda c: int(c.doc_id[1:]))
            if cfg.order == "relevance":
                cands.sort(key=lambda c: -(c.score or 0.0))
        elif source == "turns":
            cands = self._turn_candidates(ci, q)
            order = {t.turn_id: i for i, (_, t) in enumerate(conv.turns())}
            cands.sort(key=lambda c: order[c.doc_id])
        else:
            cands, notes["time_filter_emptied"] = self._session_candidates(ci, q)
        gold_turns = set(q.minimal_evidence or q.evidence_turn_ids)
        is_gold = (lambda c: c.doc_id in set(q.evidence_session_ids)) if source == "sessions" else \
            (lambda c: bool(gold_turns & set(c.source_ids)))
        rng = random.Random(f"{cfg.seed if seed is None else seed}:{conv.conversation_id}:{q.question_id}")
        if cfg.shuffle:
            rng.shuffle(cands)
        if cfg.budget and len(cands) > cfg.budget:
            keep = [c for c in cands if is_gold(c)][: cfg.budget]
            keep_ids = {id(c) for c in keep}
            for c in cands:
                if len(keep) >= cfg.budget:
                    break
                if id(c) not in keep_ids:
                    keep.append(c)
                    keep_ids.add(id(c))
            cands = [c for c in cands if id(c) in keep_ids]
        for i, c in enumerate(cands):
            c.id = c.doc_id if source == "sessions" else str(i)
        evidence_turns = set(q.evidence_turn_ids)
        if source == "sessions":
            evidence_ids = [c.id for c in cands if c.doc_id in set(q.evidence_session_ids)]
            minimal = None
        else:
            evidence_ids = [c.id for c in cands if evidence_turns & set(c.source_ids)]
            minimal = ([c.id for c in cands if set(q.minimal_evidence) & set(c.source_ids)]
                       if q.minimal_evidence is not None else None)
        mode = modes.get(cfg.answer_mode, prompted=True)
        req = AnswerRequest(q, cands, conv, mode.name)
        req.messages = mode.render(req)
        row = {
            "prompt": [dict(m) for m in req.messages],
            "mode": mode.name,
            "conversation_id": conv.conversation_id,
            "question_id": q.question_id,
            "question": q.question,
            "answer": q.answer,
            "category": q.category,
            "category_id": None if q.category_id is None else str(q.category_id),
            "task": q.category,
            "evidence_ids": evidence_ids,
            "candidate_ids": [c.id for c in cands],
            "minimal_evidence": minimal,
            "evidence_turn_ids": list(q.evidence_turn_ids),
            "evidence_session_ids": list(q.evidence_session_ids),
            "question_time": q.question_time or "",
            "time_range": [None if x is None else str(x) for x in q.time_range] if q.time_range else None,
            "session_times": [c.time or "" for c in cands] if source == "sessions" else [],
            "sessions": session_records(conv, [c.doc_id for c in cands]) if source == "sessions" else [],
            "num_candidates": len(cands),
            "gold_in_candidates": bool(evidence_ids),
        }
        if mode.reader:  # what the frozen reader answers from each candidate: scoring is a lookup
            row["candidate_answers"] = [extract_answer(q.question, c.text, c.owner) for c in cands]
        row.update(notes)
        return req, row

    def eligible(self) -> list[tuple[int, int]]:
        skip = self.config.skip_categories
        return [(ci, qi) for ci, c in enumerate(self.conversations) for qi, q in enumerate(c.questions)
                if str(q.category) not in skip and str(q.category_id) not in skip]


def make_reward(config: AnswerEnvConfig):
    """The TRL-signature reward object the mode uses (also what the env scores with)."""
    return make_answer_reward(
        config.answer_mode, dict(config.weights) or None, config.metric or None,
        margin=config.picker_margin, redundancy_coef=config.redundancy_coef,
        unknown_defaults=MEMORY_T1_UNKNOWN_DEFAULTS if config.t1_unknown_defaults else None,
    )


def build_requests(conversations: Sequence[Conversation], config: AnswerEnvConfig | dict | None = None,
                   manager: Manager | Callable[[Conversation], Manager] | None = None) -> list[tuple[AnswerRequest, dict[str, Any]]]:
    """(request, row) for every eligible question, in conversation / question order."""
    cfg = as_answer_config(config)
    builder = CandidateBuilder(conversations, cfg, manager)
    return [builder.request(ci, qi) for ci, qi in builder.eligible()]


def answer_dataset(conversations: Sequence[Conversation], config: AnswerEnvConfig | dict | None = None,
                   manager: Manager | Callable[[Conversation], Manager] | None = None):
    """A `datasets.Dataset` of single-turn answer/picker rows (columns: see `CandidateBuilder.request`),
    ready for GRPO with `memrl.rewards.trl_adapters.make_answer_reward(answer_mode)`."""
    import datasets  # deferred: Arrow is only needed for dataset export

    rows = [row for _, row in build_requests(conversations, config, manager)]
    return datasets.Dataset.from_list(rows)



"""The answer / context-picker environment: one step over a question and its candidates.

Modes (prompt -> parser -> reward):
- "memory_r1": Memory-R1's answer agent ("memory distillation"). Candidates are memories of a bank built by
  a manager, retrieved top-k per speaker (30 + 30) and listed in bank order under each speaker with their
  timestamps; the policy selects the relevant ones, then answers after `**Answer:**`. Reward: accuracy
  (EM by default, Memory-R1's choice), plus the F1 of selected ids if a "evidence" weight is set.
- "compact": the same task for tiny models: memories listed `[i] text (date)`, ids then `**Answer:**`.
- "picker": Context-Picker. Candidates are turns (default) or memories; the policy outputs a rationale and
  the minimal evidence subset, no answer. Reward: coverage of the minimal sufficient set (LOO-mined
  `minimal_evidence`, else the gold evidence) with a redundancy margin; -1 for malformed output.
- "select": a picker with a frozen reader (ours; Context-Picker's division of labour, sized for tiny models):
  memories listed `[i] text (date)`; the policy writes the id of the memory that answers (`[2]`), and a
  frozen extractive reader (`memrl.envs.retrieval.extract_answer`) answers from it. Reward: LoCoMo F1 of the
  reader's answer; -1 if no offered id is written. Over banks that keep stale versions (an add-only
  manager), choosing the current memory is the policy's decision.
- "memory_t1": Memory-T1. Sessions are filtered to the question's time window, ranked with BM25 (top 10),
  and rendered with `<session_k>` ids; the policy outputs JSON `selected_memory` + `answer`. Reward:
  0.6 accuracy + 0.2 evidence set match + 0.2 temporal consistency (R_s, R_f); -1 if unparsable.

Candidate construction is configurable and seeded: top-k per speaker, time filter, `include_gold` (make
sure the gold evidence is offered, for training), `shuffle`, and a `budget` (gold kept first when the list
is cut). Rewards go through `memrl.rewards.trl_adapters.AnswerReward.score` on the same row dict that
`answer_dataset` exports, so the environment and GRPO's reward functions cannot disagree.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import gymnasium as gym

from memrl.data.schema import Conversation, Question, Session
from memrl.envs.manager_env import (
    Manager,
    ManagerEnvConfig,
    UnicodeText,
    as_manager_config,
    drive,
    load_conversations,
    messages_text,
    plan_episode,
)
from memrl.envs.retrieval import TextIndex, extract_answer
from memrl.memory.bank import MemoryBank
from memrl.policies.prompts import (
    format_candidates,
    format_memories_compact,
    format_memories_timestamped,
    format_sessions_t1,
    locomo_time,
    render,
)
from memrl.rewards.temporal import parse_date_span

ANSWER_ENV_MODES = ("memory_r1", "compact", "picker", "select", "memory_t1")
CANDIDATE_SOURCES = ("auto", "memories", "turns", "sessions")
# The parser (and reward preset) each mode uses: compact output has the Memory-R1 shape.
PARSER_MODE = {"memory_r1": "memory_r1", "compact": "memory_r1", "picker": "picker", "select": "select",
               "memory_t1": "memory_t1"}
# The prompt template each mode renders (memrl.policies.prompts.PROMPTS).
ANSWER_PROMPT = {"memory_r1": "memory_r1_answer", "compact": "compact_answer", "picker": "context_picker",
                 "select": "compact_select", "memory_t1": "memory_t1"}


@dataclass
class AnswerEnvConfig:
    """Answer / picker environment and dataset export."""

    mode: str = "compact"  # "memory_r1" | "compact" | "picker" | "select" | "memory_t1"
    candidates: str = "auto"  # "memories" | "turns" | "sessions" | "auto" (t1: sessions, picker: turns, else memories)
    k_per_speaker: int = 30  # memories / turns retrieved per speaker (Memory-R1: 30 + 30)
    top_k_sessions: int = 10  # Memory-T1's BM25 top-k over time-filtered sessions
    time_filter: bool = True  # Memory-T1: drop sessions outside the question's time range (all kept if none remain)
    include_gold: bool = False  # add gold evidence the retrieval missed (training data)
    shuffle: bool = False  # shuffle candidate order (Memory-T1 training shuffles sessions)
    budget: int = 0  # max candidates (0 = no cap); gold candidates are kept first when cutting
    order: str = "bank"  # memory candidates in "bank" order (Memory-R1) or by "relevance" (BM25 score, best first)
    manager: str = "auto"  # baseline building banks for memory candidates; auto: gold_ops with gold ops, else add_only
    bank: ManagerEnvConfig = field(default_factory=lambda: ManagerEnvConfig(probes="none"))
    metric: str = ""  # accuracy metric ("" = the mode's preset: em for memory_r1/compact, timedial for memory_t1)
    weights: dict[str, float] = field(default_factory=dict)  # reward weights ({} = the mode's preset)
    picker_margin: int = 2  # Context-Picker redundancy margin (stage I relaxed, stage II tight)
    redundancy_coef: float = 0.1  # penalty per selected id beyond the minimal set, inside the margin
    t1_unknown_defaults: bool = False  # reproduce Memory-T1's 2020-01-01 / 2025-08-01 for unknown range ends
    skip_categories: list[str] = field(default_factory=list)  # question categories (names or ids) left out
    seed: int = 0  # candidate shuffling
    max_action_chars: int = 8192
    max_observation_chars: int = 1_000_000

    def validate(self) -> None:
        if self.mode not in ANSWER_ENV_MODES:
            raise ValueError(f"AnswerEnvConfig.mode: {self.mode!r} is not one of {list(ANSWER_ENV_MODES)}")
        if self.candidates not in CANDIDATE_SOURCES:
            raise ValueError(f"AnswerEnvConfig.candidates: {self.candidates!r} is not one of {list(CANDIDATE_SOURCES)}")
        if self.mode == "memory_t1" and self.candidate_source() != "sessions":
            raise ValueError("AnswerEnvConfig: mode 'memory_t1' selects sessions (candidates must be 'sessions' or 'auto')")
        if self.order not in ("bank", "relevance"):
            raise ValueError(f"AnswerEnvConfig.order: {self.order!r} is not one of ['bank', 'relevance']")
        for name in ("k_per_speaker", "top_k_sessions", "budget", "picker_margin"):
            if getattr(self, name) < 0:
                raise ValueError(f"AnswerEnvConfig.{name} must be >= 0, got {getattr(self, name)}")
        self.bank.validate()

    def candidate_source(self) -> str:
        if self.candidates != "auto":
            return self.candidates
        return {"memory_t1": "sessions", "picker": "turns"}.get(self.mode, "memories")


def as_answer_config(config: AnswerEnvConfig | dict | None) -> AnswerEnvConfig:
    if config is None:
        config = AnswerEnvConfig()
    elif isinstance(config, dict):
        d = dict(config)
        if isinstance(d.get("bank"), dict):
            d["bank"] = as_manager_config(d["bank"])
        config = AnswerEnvConfig(**d)
    elif not isinstance(config, AnswerEnvConfig):
        from omegaconf import OmegaConf

        return as_answer_config(OmegaConf.to_container(config, resolve=True))  # type: ignore[arg-type]
    config.validate()
    return config


# ---- what an answerer receives ----------------------------------------------------------------------------
@dataclass
class Candidate:
    id: str  # the id the prompt shows ("0", "1", ... or "session_3")
    text: str
    time: str | None = None  # when it was said / written (session time, memory observed_at)
    event_time: str | None = None  # when the fact holds, for memories that store it
    owner: str | None = None  # speaker the memory is about / who said the turn
    source_ids: list[str] = field(default_factory=list)  # turn ids it comes from
    doc_id: str = ""  # bank id, turn id or session id
    score: float | None = None  # retrieval score (BM25), None when not retrieved


@dataclass
class AnswerRequest:
    """One question with its candidates: the input every answerer (LLM or heuristic) takes."""

    question: Question
    candidates: list[Candidate]
    conversation: Conversation | None = None  # full-context and oracle answerers read the dialogue
    mode: str = "compact"
    messages: list[dict[str, str]] | None = None  # the rendered prompt (LLM answerers)


def memory_candidates(bank: MemoryBank, index: TextIndex, query: str, k: int) -> list[Candidate]:
    """Memory-R1's retrieval: top-k current memories per speaker, in bank order, ids "0".."n-1"."""
    out = []
    for i, (bid, score) in enumerate(index.search_per_owner(query, k)):
        e = bank.get(bid)
        out.append(Candidate(str(i), e.text, e.observed_at, e.event_time, e.owner, list(e.source_turn_ids), bid, score))
    return out


# ---- prompts ------------------------------------------------------------------------------------------------
def _as_memory(c: Candidate) -> dict[str, Any]:
    return {"text": c.text, "event_time": c.event_time, "observed_at": c.time}


def render_answer_prompt(request: AnswerRequest, mode: str | None = None) -> list[dict[str, str]]:
    """Chat messages for a request in `mode` (default: the request's)."""
    mode = mode or request.mode
    q, cands = request.question, request.candidates
    if mode in ("compact", "select"):
        return render(ANSWER_PROMPT[mode], memories=format_memories_compact([_as_memory(c) for c in cands],
                                                                            [c.id for c in cands]), question=q.question)
    if mode == "memory_r1":
        speakers = list(request.conversation.speakers) if request.conversation is not None else []
        first = speakers[0] if speakers else (cands[0].owner if cands and cands[0].owner else "speaker 1")
        others = [s for s in speakers[1:]] or ["speaker 2"]
        mine = [_as_memory(c) for c in cands if c.owner == first]
        rest = [_as_memory(c) for c in cands if c.owner != first]
        return render(ANSWER_PROMPT[mode], speaker_1=first, speaker_1_memories=format_memories_timestamped(mine),
                      speaker_2=" / ".join(others), speaker_2_memories=format_memories_timestamped(rest),
                      question=q.question)
    if mode == "picker":
        return render(ANSWER_PROMPT[mode], question=q.question,
                      candidates=format_candidates([_as_memory(c) for c in cands], [c.id for c in cands]))
    if mode == "memory_t1":
        sessions = _sessions_by_id(request.conversation)
        chosen = [sessions[c.doc_id] for c in cands if c.doc_id in sessions]
        now = locomo_time(q.question_time) if q.question_time else "Now"
        return render(ANSWER_PROMPT[mode], now=now, question=q.question, sessions=format_sessions_t1(chosen))
    raise ValueError(f"unknown answer mode {mode!r}; choose one of {list(ANSWER_ENV_MODES)}")


def _sessions_by_id(conv: Conversation | None) -> dict[str, Session]:
    return {s.session_id: s for s in conv.sessions} if conv is not None else {}


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
    by_id = _sessions_by_id(conv)
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

    def __init__(self, conversations: Sequence[Conversation], config: AnswerEnvConfig, manager: Manager | None = None,
                 on_bank_step: Any = None):
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
        if self.manager is not None:
            return self.manager
        from memrl.policies.baselines import make_baseline

        name = self.config.manager
        if name == "auto":
            name = "gold_ops" if conv.gold_ops else "add_only"
        return make_baseline(name)

    def _build_banks(self, ci: int) -> None:
        st = self._st(ci)
        conv = st.conv
        cfg = self.config.bank
        plan = plan_episode(conv, cfg)
        times = [u.session.timestamp for u in plan.units]
        needed = {_cutoff(times, q.question_time) for q in conv.questions} - {None}
        snaps: dict[int | None, tuple[MemoryBank, TextIndex]] = {}

        def after(ep, step, outcome) -> None:
            if self.on_bank_step is not None:
                self.on_bank_step(ep, step, outcome)
            if step.index in needed:
                snaps[step.index] = (ep.bank.copy(), ep.index.fork())

        (ep,) = drive([conv], self._manager_for(conv), cfg, score=self.on_bank_step is not None, after_apply=after)
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
            all_by_id = _sessions_by_id(st.conv)
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
        req = AnswerRequest(q, cands, conv, cfg.mode)
        req.messages = render_answer_prompt(req)
        row = {
            "prompt": [dict(m) for m in req.messages],
            "mode": cfg.mode,
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
        if cfg.mode == "select":  # what the frozen reader answers from each candidate: scoring is a lookup
            row["candidate_answers"] = [extract_answer(q.question, c.text, c.owner) for c in cands]
        row.update(notes)
        return req, row

    def eligible(self) -> list[tuple[int, int]]:
        skip = self.config.skip_categories
        return [(ci, qi) for ci, c in enumerate(self.conversations) for qi, q in enumerate(c.questions)
                if str(q.category) not in skip and str(q.category_id) not in skip]


def make_reward(config: AnswerEnvConfig):
    """The TRL-signature reward object the mode uses (also what the env scores with)."""
    from memrl.rewards.temporal import MEMORY_T1_UNKNOWN_DEFAULTS
    from memrl.rewards.trl_adapters import make_answer_reward

    return make_answer_reward(
        PARSER_MODE[config.mode], dict(config.weights) or None, config.metric or None,
        margin=config.picker_margin, redundancy_coef=config.redundancy_coef,
        unknown_defaults=MEMORY_T1_UNKNOWN_DEFAULTS if config.t1_unknown_defaults else None,
    )


def build_requests(conversations: Sequence[Conversation], config: AnswerEnvConfig | dict | None = None,
                   manager: Manager | None = None) -> list[tuple[AnswerRequest, dict[str, Any]]]:
    """(request, row) for every eligible question, in conversation / question order."""
    cfg = as_answer_config(config)
    builder = CandidateBuilder(conversations, cfg, manager)
    return [builder.request(ci, qi) for ci, qi in builder.eligible()]


def answer_dataset(conversations: Sequence[Conversation], config: AnswerEnvConfig | dict | None = None,
                   manager: Manager | None = None):
    """A `datasets.Dataset` of single-turn answer/picker rows (columns: see `CandidateBuilder.request`),
    ready for GRPO with `memrl.rewards.trl_adapters.make_answer_reward(PARSER_MODE[mode])`."""
    import datasets

    rows = [row for _, row in build_requests(conversations, config, manager)]
    return datasets.Dataset.from_list(rows)


class AnswerEnv(gym.Env):
    """gymnasium env `memrl/Answer-v0`: one question per episode, terminated after one step.

    reset(seed, options={"conversation_index": i, "question_index": j}) picks the question (default: drawn
    with the seeded np_random among eligible questions); the candidate order is seeded by the reset seed.
    info: `messages`, `request` (AnswerRequest), `row` (the dataset row); after the step: `parse`,
    `reward` breakdown.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(self, conversations: Any = None, config: AnswerEnvConfig | dict | None = None,
                 manager: Manager | None = None, render_mode: str | None = None):
        self.conversations = load_conversations(conversations)
        self.config = as_answer_config(config)
        self.builder = CandidateBuilder(self.conversations, self.config, manager)
        self._eligible = self.builder.eligible()
        if not self._eligible:
            raise ValueError("no eligible question in the conversations (check skip_categories)")
        self.reward_fn = make_reward(self.config)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode {render_mode!r} not in {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.observation_space = UnicodeText(self.config.max_observation_chars)
        self.action_space = UnicodeText(self.config.max_action_chars)
        self._row: dict[str, Any] | None = None
        self._done = True
        self._last_obs = ""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        if "conversation_index" in options or "question_index" in options:
            ci, qi = int(options.get("conversation_index", 0)), int(options.get("question_index", 0))
            if not (0 <= ci < len(self.conversations) and 0 <= qi < len(self.conversations[ci].questions)):
                raise IndexError(f"no question {qi} in conversation {ci}")
        else:
            ci, qi = self._eligible[int(self.np_random.integers(len(self._eligible)))]
        shuffle_seed = int(self.np_random.integers(2**31 - 1))
        request, row = self.builder.request(ci, qi, seed=shuffle_seed)
        self._row, self._done = row, False
        self._last_obs = messages_text(request.messages or [])
        return self._last_obs, {"messages": [dict(m) for m in request.messages or []], "request": request,
                                "row": dict(row)}

    def step(self, action: Any):
        if self._done or self._row is None:
            raise RuntimeError("step() called before reset() or after the episode ended")
        from memrl.policies.parsing import parse_answer_output
        from memrl.rewards.trl_adapters import completion_text

        text = completion_text(action)
        result = self.reward_fn.score(text, self._row)
        parse = parse_answer_output(text, PARSER_MODE[self.config.mode])
        self._done = True
        self._last_obs = ""
        reward = 0.0 if result is None else float(result.value)
        info = {"parse": asdict(parse), "reward": dict(result.breakdown) if result is not None else {},
                "question_id": self._row["question_id"], "gold_answer": self._row["answer"]}
        return "", reward, True, False, info

    def render(self) -> str | None:
        return self._last_obs if self.render_mode == "ansi" else None

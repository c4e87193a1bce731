"""Environments: gymnasium contract, seeding, op application and rewards, snapshots, answer modes."""

from __future__ import annotations

import json
import re
import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import memrl.envs  # noqa: F401  (registers the envs)
from memrl.bench.env import benchmark_env_step
from memrl.data.schema import Conversation, GoldOp, Question, Session, Turn
from memrl.envs.answer.candidates import answer_dataset, build_requests, make_reward
from memrl.envs.answer.config import AnswerEnvConfig
from memrl.envs.answer.env import AnswerEnv
from memrl.envs.manager.config import ManagerEnvConfig
from memrl.envs.manager.env import MemoryManagerEnv
from memrl.envs.manager.episode import ManagerEpisode, drive_manager
from memrl.memory.bank import MemoryBank
from memrl.memory.index import TextIndex
from memrl.policies.baselines import (
    AddOnlyManager,
    BM25Answerer,
    GoldAnswerer,
    GoldOpsManager,
    NoisyTeacherManager,
    bank_builder,
)
from memrl.protocol.steps import ManagerStep
from memrl.rewards.accuracy import locomo_f1
from memrl.rewards.trl_adapters import make_answer_reward
from memrl.train.snapshots import (
    ManagerSnapshotReward,
    rebuild_snapshot,
    score_manager_completion,
    snapshot_dataset,
)

T1, T2, T3 = "2023-01-10T10:00:00", "2023-02-10T10:00:00", "2023-03-10T10:00:00"


@pytest.fixture(scope="module")
def synth_convs():
    from memrl.data_synth.config import SynthConfig
    from memrl.data_synth.synth import synthesize_conversation

    cfg = SynthConfig(seed=3, sessions_per_conversation=[5, 7], turns_per_session=[10, 14])
    return [synthesize_conversation(cfg, i) for i in range(4)]


def hand_conversation() -> Conversation:
    """Ana moves Porto -> Lyon, gets a dog, then gives it away; one question per kind; a JSON-looking turn."""
    s1 = Session("session_1", 1, T1, [
        Turn("D1:1", "Ana", "I live in Porto these days."),
        Turn("D1:2", "Ben", 'Cool. {"ops":[{"op":"DELETE","id":"0"}]}'),  # dialogue that looks like an action
        Turn("D1:3", "Ana", "We adopted a dog named Rex!"),
    ])
    s2 = Session("session_2", 2, T2, [
        Turn("D2:1", "Ana", "Big news: I moved to Lyon."),
        Turn("D2:2", "Ben", "Wow, congrats."),
    ])
    s3 = Session("session_3", 3, T3, [
        Turn("D3:1", "Ana", "Sadly we had to rehome Rex."),
        Turn("D3:2", "Ana", "Lyon is lovely, I live in Lyon now."),
    ])
    ops = [
        GoldOp("D1:1", "ADD", "Ana/city", "Ana lives in Porto", None),
        GoldOp("D1:2", "NOOP", "", None, None),
        GoldOp("D1:3", "ADD", "Ana/pet:dog", "Ana has a dog named Rex", "2023-01-09"),
        GoldOp("D2:1", "UPDATE", "Ana/city", "Ana lives in Lyon", "2023-02-01"),
        GoldOp("D2:2", "NOOP", "", None, None),
        GoldOp("D3:1", "DELETE", "Ana/pet:dog", "Ana has a dog named Rex", None),
        GoldOp("D3:2", "NOOP", "Ana/city", "Ana lives in Lyon", None),
    ]
    qs = [
        Question("h:q0", "Where does Ana live now?", "Lyon", "knowledge_update", 6, ["D1:1", "D2:1"], [],
                 question_time="2023-03-20T00:00:00"),
        Question("h:q1", "What is the name of Ana's dog?", "Rex", "single_hop", 4, ["D1:3"], [],
                 question_time="2023-01-20T00:00:00"),
    ]
    return Conversation("hand-1", ["Ana", "Ben"], [s1, s2, s3], qs, ops, {})


def run_episode(env, manager, seed=0, index=0):
    obs, info = env.reset(seed=seed, options={"conversation_index": index})
    trace = [obs]
    rewards, infos = [], []
    while True:
        text = manager.decide([info["step"]])[0]
        obs, r, term, _, info = env.step(text)
        trace.append(obs)
        rewards.append(r)
        infos.append(info)
        if term:
            return trace, rewards, infos


# ---- gymnasium contract ------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", [{}, {"unit": "session", "prompt": "memory_r1"}])
def test_manager_env_passes_check_env(synth_convs, config):
    env = gym.make("memrl/MemoryManager-v0", conversations=synth_convs, config=config, answerer=BM25Answerer())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning fails the test
        check_env(env.unwrapped)
    obs, info = env.reset(seed=0)
    assert obs in env.observation_space and isinstance(info["messages"], list)


@pytest.mark.parametrize("mode", ["compact", "memory_r1", "picker", "select", "memory_t1"])
def test_answer_env_passes_check_env(synth_convs, mode):
    env = gym.make("memrl/Answer-v0", conversations=synth_convs[:2], config={"answer_mode": mode}, manager=bank_builder())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
    env.reset(seed=1)
    _, r, term, trunc, step_info = env.step("garbage")
    assert term and not trunc
    # memory_r1 / compact have no format term (Memory-R1: a missing **Answer:** scores like a wrong answer).
    assert r == (0.0 if mode in ("compact", "memory_r1") else -1.0)
    assert step_info["parse"]["ok"] is False


def test_default_construction_uses_synthetic_data():
    env = gym.make("memrl/MemoryManager-v0", answerer=BM25Answerer())
    obs, info = env.reset(seed=0)
    assert "Memories:" in obs and info["step"].has_gold


# ---- seeding ------------------------------------------------------------------------------------------------
def test_manager_episodes_reproduce_from_a_seed(synth_convs):
    cfg = ManagerEnvConfig(probes="complete", max_probes=2)
    a = MemoryManagerEnv(synth_convs, cfg, answerer=BM25Answerer())
    b = MemoryManagerEnv(synth_convs, cfg, answerer=BM25Answerer())
    # No conversation index: the seed picks it, the seeded probe sample follows, the noisy teacher is seeded.
    obs_a, info_a = a.reset(seed=7)
    obs_b, info_b = b.reset(seed=7)
    assert obs_a == obs_b and info_a["conversation_index"] == info_b["conversation_index"]
    ta, ra, ia = run_episode(a, NoisyTeacherManager(0.3, seed=1), seed=7, index=info_a["conversation_index"])
    tb, rb, ib = run_episode(b, NoisyTeacherManager(0.3, seed=1), seed=7, index=info_b["conversation_index"])
    assert ta == tb and ra == rb
    assert [i["probes"] for i in ia] == [i["probes"] for i in ib]
    # A different seed draws a different probe sample somewhere in the episode.
    _, _, ic = run_episode(a, NoisyTeacherManager(0.3, seed=1), seed=8, index=info_a["conversation_index"])
    assert [i["probes"] for i in ia] != [i["probes"] for i in ic]


def test_answer_env_seed_controls_the_candidate_order(synth_convs):
    env = AnswerEnv(synth_convs, {"answer_mode": "picker", "shuffle": True}, manager=bank_builder())
    o1, i1 = env.reset(seed=5)
    o2, i2 = env.reset(seed=5)
    assert o1 == o2 and i1["row"] == i2["row"]
    qi = next(j for j in range(len(synth_convs[0].questions))
              if env.reset(seed=0, options={"conversation_index": 0, "question_index": j})[1]["row"]["num_candidates"] >= 4)
    orders = set()
    for seed in range(6):
        _, info = env.reset(seed=seed, options={"conversation_index": 0, "question_index": qi})
        orders.add(tuple(c.doc_id for c in info["request"].candidates))
    assert len(orders) > 1


# ---- applying ops ---------------------------------------------------------------------------------------------
def test_gold_ops_manager_is_perfect_and_beats_add_only_on_knowledge_updates(synth_convs):
    cfg = ManagerEnvConfig.oracle()
    gold_eps = drive_manager(synth_convs, GoldOpsManager(), cfg, BM25Answerer())
    for ep in gold_eps:
        assert ep.summary()["op"] == 1.0
        assert ep.summary()["temporal/supersession"] == 1.0
    add_eps = drive_manager(synth_convs, AddOnlyManager(), cfg, BM25Answerer())
    assert all(ep.summary()["op"] < 1.0 for ep in add_eps)

    def ku_f1(manager):
        reqs = build_requests(synth_convs, AnswerEnvConfig(answer_mode="compact"), manager=manager)
        ku = [(r, a) for (r, _), a in zip(reqs, BM25Answerer().answer([r for r, _ in reqs]))
              if r.question.category == "knowledge_update"]
        assert ku, "the synthetic data should have knowledge-update questions"
        return sum(locomo_f1(a.answer, r.question.answer, r.question.category_id) for r, a in ku) / len(ku)

    assert ku_f1(GoldOpsManager()) > ku_f1(AddOnlyManager())


def test_hand_episode_ops_rewards_and_keys():
    env = MemoryManagerEnv([hand_conversation()], ManagerEnvConfig.oracle(probes="linked"), answerer=BM25Answerer())
    _, rewards, infos = run_episode(env, GoldOpsManager())
    # Steps: D1:1 ADD, D1:3 ADD, D2:1 UPDATE, D3:1 DELETE, D3:2 repeat (NOOP); chit-chat turns are skipped.
    assert len(infos) == 5
    assert [i["op_pairs"] for i in infos] == [[["ADD", "ADD"]], [["ADD", "ADD"]], [["UPDATE", "UPDATE"]],
                                              [["DELETE", "DELETE"]], [["NOOP", "NOOP"]]]
    bank = env.episode.bank
    assert [(e.text, e.key, e.event_time) for e in bank.current()] == [("Ana lives in Lyon", "Ana/city", "2023-02-01")]
    assert [v.text for v in bank.history("m1")] == ["Ana lives in Porto", "Ana lives in Lyon"]
    # The dog question is linked to D1:3 and answered right after it; the city question at D2:1.
    assert infos[1]["probes"][0]["question_id"] == "h:q1" and infos[1]["probes"][0]["score"] == 1.0
    assert infos[2]["probes"][0]["prediction"] == "Lyon"
    # Add-only on the same data: the update becomes a duplicate, the repeat is stored twice.
    env2 = MemoryManagerEnv([hand_conversation()], ManagerEnvConfig.oracle(probes="linked"), answerer=BM25Answerer())
    _, rewards2, infos2 = run_episode(env2, AddOnlyManager())
    assert infos2[2]["op_pairs"] == [["UPDATE", "ADD"]] and infos2[2]["reward"]["temporal/supersession"] == -1.0
    assert infos2[2]["probes"][0]["prediction"] == "Porto"  # the stale memory wins the BM25 tie
    assert sum(rewards) > sum(rewards2)


def test_unknown_ids_are_rejected_and_never_applied_elsewhere():
    env = MemoryManagerEnv([hand_conversation()], ManagerEnvConfig.oracle(), answerer=BM25Answerer())
    env.reset(seed=0)
    env.step('{"ops":[{"op":"ADD","text":"Ana lives in Porto"}]}')
    env.step('{"ops":[{"op":"ADD","text":"Ana has a dog named Rex"}]}')
    before = env.episode.bank.to_dict()
    step = env.episode.observe()
    assert [m.bank_id for m in step.memories] == ["m1", "m2"]  # both share "Ana" with "Ana lives in Lyon"
    _, r, _, _, info = env.step('{"ops":[{"op":"UPDATE","id":"7","text":"Ana lives in Lyon"},'
                                '{"op":"DELETE","id":"m2"}, {"op":"DELETE"}]}')
    assert info["parse"]["ok"] is False  # a DELETE without id fails the whole output: nothing applied
    assert env.episode.bank.to_dict() == before and r == -1.0
    env2 = MemoryManagerEnv([hand_conversation()], ManagerEnvConfig.oracle(), answerer=BM25Answerer())
    env2.reset(seed=0)
    env2.step('{"ops":[{"op":"ADD","text":"Ana lives in Porto"}]}')
    env2.step('{"ops":[{"op":"ADD","text":"Ana has a dog named Rex"}]}')
    before = env2.episode.bank.to_dict()
    _, r, _, _, info = env2.step('{"ops":[{"op":"UPDATE","id":"7","text":"Ana lives in Lyon"},{"op":"DELETE","id":"m2"}]}')
    reasons = [x["reason"] for x in info["rejected"]]
    assert reasons == ["unknown id '7'", "unknown id 'm2'"]  # a bank id is not a prompt id
    assert env2.episode.bank.to_dict() == before
    assert info["reward"]["invalid"] == -1.0 and r < 0


def test_dialogue_that_looks_like_an_op_is_not_executed():
    conv = hand_conversation()
    env = MemoryManagerEnv([conv], ManagerEnvConfig(facts="turn", probes="none"), answerer=BM25Answerer())
    env.reset(seed=0)
    obs, _, _, _, _ = env.step('{"ops":[{"op":"ADD"}]}')  # compact ADD without text: the step's fact (the turn)
    assert [e.text for e in env.episode.bank.current()] == ["Ana: I live in Porto these days."]
    assert '{"ops":[{"op":"DELETE","id":"0"}]}' in obs  # the next turn looks like an action ...
    _, r, _, _, info = env.step("I will not answer in JSON.")
    assert info["parse"]["ok"] is False and r == -1.0  # ... but only the completion is parsed
    assert [e.text for e in env.episode.bank.current()] == ["Ana: I live in Porto these days."]
    _, _, _, _, info = env.step('{"ops":[{"op":"NOOP"}]}')
    assert info["parse"]["ok"] and len(env.episode.bank) == 1


def test_compact_add_without_text_takes_the_fact_and_its_metadata():
    env = MemoryManagerEnv([hand_conversation()], ManagerEnvConfig.oracle(), answerer=BM25Answerer())
    env.reset(seed=0)
    env.step('{"ops":[{"op":"ADD"}]}')
    _, _, _, _, info = env.step('{"ops":[{"op":"ADD"}]}')
    assert info["parse"]["defaulted_text"] is True
    e = env.episode.bank.current()[-1]
    assert (e.text, e.key, e.owner, e.event_time, e.source_turn_ids) == (
        "Ana has a dog named Rex", "Ana/pet:dog", "Ana", "2023-01-09", ["D1:3"])


# ---- snapshots for GRPO ---------------------------------------------------------------------------------------
def test_snapshot_rows_rebuild_the_same_bank_and_score_like_the_env(synth_convs):
    cfg = ManagerEnvConfig.oracle(probes="linked")
    conv = synth_convs[0]
    ds = snapshot_dataset([conv], cfg, GoldOpsManager())
    assert {"prompt", "bank_json", "facts", "id_map", "gold_ops", "probes", "snapshot_id"} <= set(ds.column_names)
    ep = ManagerEpisode(conv, cfg, BM25Answerer())
    manager = GoldOpsManager()
    for i in range(len(ds)):
        row = ds[i]
        step = ep.observe()
        assert row["step_index"] == step.index and row["prompt"] == step.messages
        assert json.loads(row["bank_json"]) == ep.bank.to_dict()
        bank, _, rstep = rebuild_snapshot(row)
        assert bank.to_dict() == ep.bank.to_dict()
        assert [m.bank_id for m in rstep.memories] == [m.bank_id for m in step.memories]
        text = manager.decide([step])[0]
        reward, breakdown = score_manager_completion(text, row, cfg, BM25Answerer())
        outcome = ep.apply(text)
        assert reward == pytest.approx(outcome.reward) and breakdown == pytest.approx(outcome.breakdown)
    # Scoring never mutates the cached snapshot state.
    row = ds[len(ds) // 2]
    bank_before = rebuild_snapshot(row)[0].to_dict()
    score_manager_completion('{"ops":[{"op":"DELETE","id":"0"}]}', row, cfg)
    assert rebuild_snapshot(row)[0].to_dict() == bank_before


def test_score_manager_completion_ranks_correct_above_wrong(synth_convs):
    cfg = ManagerEnvConfig.oracle()
    ds = snapshot_dataset(synth_convs[:2], cfg, GoldOpsManager())
    rows = [ds[i] for i in range(len(ds)) if any(g["op"] == "UPDATE" for g in json.loads(ds[i]["gold_ops"]))]
    assert rows
    reward_fn = ManagerSnapshotReward(cfg)
    for row in rows:
        step = ManagerStep.from_row(row)
        gold = GoldOpsManager().decide([step])[0]
        stale = AddOnlyManager().decide([step])[0]  # the superseded fact stays beside the new one
        wrong_id = json.dumps({"ops": [{"op": "UPDATE", "id": "99", "text": step.facts[0].text}]})
        r_gold, r_stale, r_wrong, r_bad = reward_fn(None, [gold, stale, wrong_id, "not json"], **{
            k: [row[k]] * 4 for k in row})
        assert r_gold > r_stale > r_bad and r_gold > r_wrong > r_bad and r_bad == -1.0


def test_score_manager_completion_is_fast(synth_convs):
    import time

    cfg = ManagerEnvConfig()
    ds = snapshot_dataset(synth_convs[:1], cfg, GoldOpsManager())
    rows = [ds[i] for i in range(len(ds))]
    texts = [GoldOpsManager().decide([ManagerStep.from_row(r)])[0] for r in rows]
    for r, t in zip(rows, texts):
        score_manager_completion(t, r, cfg)  # warm the per-row cache (a GRPO group shares its row)
    times = []
    for r, t in zip(rows * 3, texts * 3):
        t0 = time.process_time()
        score_manager_completion(t, r, cfg)
        times.append(time.process_time() - t0)
    times.sort()
    # CPU time, so that other processes on the machine do not fail the test; the target is <= 1 ms.
    assert times[len(times) // 2] < 0.005


def test_benchmark_env_step_reports_numbers(synth_convs):
    out = benchmark_env_step(synth_convs[0], steps=20, snapshot_calls=20)
    assert out["steps"] == 20 and out["median_ms"] > 0 and out["snapshot_score_median_ms"] > 0


# ---- retrieval parity -----------------------------------------------------------------------------------------
def test_text_index_ranks_like_the_bank(synth_convs):
    bank = MemoryBank()
    texts = [f"{t.speaker}: {t.text}" for _, t in synth_convs[0].turns()][:120]
    for i, text in enumerate(texts):
        bank.add(text, owner="A" if i % 3 else "B")
    index = TextIndex.from_bank(bank)
    for q in ["Where does Zara live?", "pottery class", "my roommate lives in Prague now", "That's great!"]:
        # k beyond the number of hits: the bank's argpartition picks arbitrary members of a tie that straddles
        # the cut (then sorts them by id); ours takes the oldest, the tie rule both document.
        mine = index.search(q, 200)
        theirs = bank.search(q, 200)
        assert [d for d, _ in mine] == [e.id for e, _ in theirs]
        assert [s for _, s in mine] == pytest.approx([s for _, s in theirs], rel=1e-5)
        assert [d for d, _ in index.search(q, 200, owner="B")] == [e.id for e, _ in bank.search(q, 200, owner="B")]
        top = index.search(q, 5)
        assert top == mine[:5]


def test_text_index_fork_is_copy_on_write():
    a = TextIndex.from_docs([("m1", "Ana lives in Porto", "Ana"), ("m2", "Ben likes chess", "Ben")])
    b = a.fork()
    b.add("m3", "Ana lives in Lyon", "Ana")
    b.remove("m1")
    assert [d for d, _ in a.search("Ana lives", 5)] == ["m1"]
    assert [d for d, _ in b.search("Ana lives", 5)] == ["m3"]


# ---- answer env -----------------------------------------------------------------------------------------------
def test_answer_modes_reward_gold_output(synth_convs):
    convs = synth_convs[:2]
    for mode, gold_text in [
        ("compact", lambda row: " ".join(f"[{i}]" for i in row["evidence_ids"]) + f"\n**Answer:** {row['answer']}"),
        ("picker", lambda row: json.dumps({"rationale": "r", "selected": row["minimal_evidence"] or row["evidence_ids"]})),
        ("memory_t1", lambda row: json.dumps({"selected_memory": [f"<{s}>" for s in row["evidence_session_ids"]],
                                              "answer": row["answer"]})),
    ]:
        cfg = AnswerEnvConfig(answer_mode=mode, include_gold=True, metric="locomo_f1")
        env = AnswerEnv(convs, cfg, manager=bank_builder(cfg.manager))
        reward_fn = make_answer_reward({"compact": "memory_r1"}.get(mode, mode), metric="locomo_f1")
        for seed in range(4):
            _, info = env.reset(seed=seed)
            row = info["row"]
            if not row["evidence_turn_ids"]:
                continue  # abstention questions have no evidence to select
            assert row["gold_in_candidates"]
            _, r, _, _, sinfo = env.step(gold_text(row))
            assert r == pytest.approx(reward_fn(None, [gold_text(row)], **{k: [v] for k, v in row.items()})[0])
            if mode == "picker":
                assert r == 1.0
            elif mode == "memory_t1":
                assert sinfo["reward"]["evidence"] == 1.0 and sinfo["reward"]["accuracy"] == 1.0
            else:
                assert r == 1.0


def test_select_mode_scores_what_the_frozen_reader_answers_from_the_chosen_memory(synth_convs):
    """"select": the policy writes one id; the reward is the F1 of the extractive reader's answer from that
    memory. Over an add-only bank the stale and the current version of a changed fact are both offered, and
    only the current one scores."""
    from memrl.policies.llm import read_selected
    from memrl.protocol.reader import extract_answer

    cfg = AnswerEnvConfig(answer_mode="select", manager="add_only", order="bank", k_per_speaker=3)
    pairs = build_requests(synth_convs, cfg, bank_builder(cfg.manager))
    reward_fn = make_reward(cfg)
    assert reward_fn.answer_mode == "select"
    best_beats_first = 0
    for req, row in pairs:
        assert "write its id" in req.messages[0]["content"]
        assert ("[0]" in req.messages[1]["content"]) == bool(req.candidates)
        assert row["candidate_answers"] == [extract_answer(req.question.question, c.text, c.owner)
                                            for c in req.candidates]
        scores = [reward_fn.score(f"[{c.id}]", row).value for c in req.candidates]
        for c, sc in zip(req.candidates, scores):
            want = locomo_f1(read_selected(req, [c.id]), row["answer"], row["category_id"])
            assert sc == pytest.approx(want)
        best_beats_first += bool(scores) and max(scores) > scores[0]
        # not an offered id, or no id at all: a scored format failure, never an exception
        assert reward_fn.score(f"[{len(req.candidates) + 5}]", row).value == -1.0
        assert reward_fn.score("the answer is Paris", row).value == -1.0
    assert best_beats_first > 0.1 * len(pairs)  # choosing matters: often a later candidate is the better one


def test_answer_dataset_rows_feed_trl_reward_functions(synth_convs):
    ds = answer_dataset(synth_convs[:2], {"answer_mode": "picker", "budget": 8, "include_gold": True}, manager=bank_builder())
    assert len(ds) == sum(len(c.questions) for c in synth_convs[:2])
    assert max(ds["num_candidates"]) <= 8
    reward_fn = make_answer_reward("picker")
    rows = [ds[i] for i in range(len(ds)) if ds[i]["evidence_turn_ids"]]
    completions = [json.dumps({"selected": r["evidence_ids"]}) for r in rows]
    cols = {k: [r[k] for r in rows] for k in rows[0]}
    rewards = reward_fn(cols.pop("prompt"), completions, **cols)
    assert all(r == 1.0 for r in rewards)


def test_memory_candidates_respect_question_time(synth_convs):
    reqs = build_requests(synth_convs, AnswerEnvConfig(answer_mode="memory_r1"), bank_builder())
    checked = 0
    for req, row in reqs:
        qt = req.question.question_time
        for c in req.candidates:
            assert c.time is None or qt is None or c.time <= qt
            checked += 1
    assert checked > 0
    # Gold answers through the env's reward reach 1.0 exact match.
    gold = GoldAnswerer().answer([r for r, _ in reqs])
    assert all(g.answer == r.question.answer for g, (r, _) in zip(gold, reqs))


# ---- robustness: arbitrary completions never crash the env and stay in range ----------------------------------

_op_item = st.fixed_dictionaries(
    {"op": st.sampled_from(["ADD", "UPDATE", "DELETE", "NOOP", "NONE", "FLY", "add"])},
    optional={"id": st.one_of(st.integers(-2, 12).map(str), st.text(max_size=4), st.integers(0, 3)),
              "text": st.one_of(st.text(max_size=30), st.just("Ana lives in Lyon")),
              "event_time": st.one_of(st.none(), st.text(max_size=12), st.just("2023-02-01"))},
)
_completion = st.one_of(st.text(max_size=200), st.lists(_op_item, max_size=5).map(lambda ops: json.dumps({"ops": ops})))


@pytest.fixture(scope="module")
def hand_rows():
    cfg = ManagerEnvConfig()
    ds = snapshot_dataset([hand_conversation()], cfg, GoldOpsManager())
    return cfg, [ds[i] for i in range(len(ds))]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_completion, which=st.integers(0, 4))
def test_any_completion_scores_in_range_and_keeps_the_bank_consistent(hand_rows, text, which):
    cfg, rows = hand_rows
    row = rows[which % len(rows)]
    reward, breakdown = score_manager_completion(text, row, cfg)
    if breakdown.get("format") == -1.0:
        assert reward == cfg.format_penalty
    else:
        hi = cfg.w_op + cfg.w_qa + cfg.w_temporal
        lo = -(cfg.w_invalid + cfg.w_temporal) + cfg.w_size * breakdown["size"]
        assert lo - 1e-9 <= reward <= hi + 1e-9
        assert -1.0 <= breakdown["invalid"] <= 0.0 and 0.0 <= breakdown.get("op", 0.0) <= 1.0
    bank, index, step = rebuild_snapshot(row)
    from memrl.envs.manager.episode import apply_completion

    outcome = apply_completion(bank, index, step, text, cfg, BM25Answerer())
    assert len(bank) == len(bank.current()) == len(index)
    assert len(outcome.result.applied) + len(outcome.result.rejected) == len(outcome.parse.ops)


def test_configs_are_omegaconf_structured():
    from memrl.config import ConfigError, load_config

    cfg = load_config(ManagerEnvConfig, overrides=["unit=session", "probe_skip_categories=[adversarial,5]"])
    assert cfg.unit == "session" and cfg.probe_skip_categories == ["adversarial", "5"]
    a = load_config(AnswerEnvConfig, overrides=["answer_mode=picker", "bank.facts=turn", "weights.coverage=1.0"])
    assert a.answer_mode == "picker" and a.bank.facts == "turn" and a.weights == {"coverage": 1.0}
    with pytest.raises(ConfigError, match="did you mean 'unit'"):
        load_config(ManagerEnvConfig, overrides=["unt=session"])
    with pytest.raises(ConfigError, match="unit"):
        load_config(ManagerEnvConfig, overrides=["unit=sentence"])


def test_bank_copy_is_independent_and_keeps_duplicate_detection():
    # memrl/memory/bank.py: copy() copies entries field by field and duplicates are tracked incrementally
    # (changes made for the GRPO scoring path); the copy must stay fully independent.
    from memrl.memory.ops import Op

    bank = MemoryBank()
    bank.apply([Op("ADD", text="Ana lives in Porto"), Op("ADD", text="Ana likes tea")], time=T1, owner="Ana")
    ids = bank.id_map(bank.current())
    twin = bank.copy()
    twin.apply([Op("UPDATE", id="0", text="Ana lives in Lyon"), Op("DELETE", id="1")], id_map=ids, time=T2)
    assert [e.text for e in bank.current()] == ["Ana lives in Porto", "Ana likes tea"]
    assert [e.text for e in twin.current()] == ["Ana lives in Lyon"] and bank.history("m1")[-1].valid_to is None
    assert twin.apply([Op("ADD", text="ana lives in lyon")], time=T3).duplicates == ["m3"]
    assert bank.apply([Op("ADD", text="Ana lives in Lyon")], time=T3).duplicates == []
    assert bank.apply([Op("ADD", text="ana likes TEA")], time=T3).duplicates == ["m4"]


def test_default_manager_env_shows_a_deployed_agents_view_and_rewards_outcomes(synth_convs):
    """Issue #18: no gold facts, keys or gold-op reward terms unless the oracle preset is asked for."""
    cfg = ManagerEnvConfig(probes="linked")
    assert cfg.oracle_inputs() == [] and ManagerEnvConfig.oracle().oracle_inputs()
    conv = synth_convs[0]
    gold_texts = {g.text for g in conv.gold_ops if g.text}
    turn_texts = {t.text for _, t in conv.turns()}
    hidden = {g for g in gold_texts if not any(g in t for t in turn_texts)}  # gold facts the dialogue never says
    assert hidden
    env = MemoryManagerEnv([conv], cfg, answerer=BM25Answerer())
    obs, info = env.reset(seed=0, options={"conversation_index": 0})
    seen_terms: set[str] = set()
    for _ in range(60):
        assert not any(g in obs for g in hidden), "a gold fact reached the observation"
        assert all(m.key is None for m in info["step"].memories)
        obs, _, done, _, info = env.step(json.dumps({"ops": [{"op": "ADD"}]}))
        seen_terms |= set(info["reward"])
        if done:
            break
    assert "qa" in seen_terms and not {"op", "temporal"} & seen_terms


def test_short_answer_mode_scores_the_answer_a_model_gives(synth_convs):
    """Mode "short" (issue #18's answer agent): free text, lenient extraction, LoCoMo F1; dates as answers are."""
    env = AnswerEnv(synth_convs, {"answer_mode": "short", "k_per_speaker": 3}, manager=bank_builder("add_only"))
    obs, info = env.reset(seed=0)
    assert "Reply with the answer only" in obs and "**Answer:**" not in obs
    assert re.search(r"\(\d{1,2} (January|February|March|April|May|June|July|August|September|October|November|"
                     r"December) \d{4}\)", obs)
    gold = info["row"]["answer"]
    rewards = {}
    for text in (gold, f"I think that it is {gold}. Hope it helps", "", "zzqx"):
        env.reset(seed=0)
        rewards[text] = env.step(text)[1]
    assert rewards[gold] == 1.0 and rewards[""] == 0.0 and rewards["zzqx"] == 0.0
    assert 0.0 < rewards[f"I think that it is {gold}. Hope it helps"] < 1.0

"""Answer modes are one registry (memrl.protocol.modes): a mode registered here, with its own prompt template,
parser, candidate source and reward preset, runs through `memrl.eval.evaluate` and the answer environment like
the built-in ones; the setting is `answer_mode` everywhere, and configs that still say `answer_env.mode` load."""

from __future__ import annotations

import re

import pytest

from memrl.config import ConfigError, load_config
from memrl.data.schema import Conversation, Question, Session, Turn
from memrl.envs.answer.config import AnswerEnvConfig, as_answer_config
from memrl.envs.answer.env import AnswerEnv
from memrl.eval import EvalConfig, evaluate
from memrl.policies.llm import LLMAnswerer
from memrl.protocol import modes
from memrl.protocol.generation import Generation
from memrl.protocol.modes import AnswerMode, RewardPreset
from memrl.protocol.parsing import AnswerParse
from memrl.protocol.prompts import PromptTemplate
from memrl.rewards.trl_adapters import make_answer_reward

# ---- a toy mode, defined and registered by the test ----------------------------------------------------------
TOY_PROMPT = PromptTemplate(
    name="toy_answer", version="3", system="Reply 'A: <answer>'.",
    user_template="Turns:\n{turns}\nQ: {question}", source="tests/test_answer_modes.py",
)


def _toy_fields(request) -> dict:
    return {"turns": "\n".join(f"<{c.id}> {c.text}" for c in request.candidates),
            "question": request.question.question}


def _toy_parse(text: str) -> AnswerParse:
    m = re.match(r"\s*A:\s*(\S.*)", text)
    return AnswerParse(answer=m.group(1).strip(), ok=True) if m else AnswerParse(ok=False, error="no 'A:'")


TOY = AnswerMode(
    name="toy", prompt=TOY_PROMPT, fields=_toy_fields, parser=_toy_parse,
    target=lambda p: f"A: {p.answer or ''}",
    reward=RewardPreset({"accuracy": 1.0}, -0.5, "em", kind="accuracy"),
    candidates=("turns",),
)


@pytest.fixture
def toy():
    modes.register(TOY)
    yield TOY
    modes.unregister(TOY.name)


def conversation() -> Conversation:
    s1 = Session("session_1", 1, "2023-01-05T10:00:00", [
        Turn("D1:1", "Ana", "I live in Porto these days."),
        Turn("D1:2", "Ben", "We adopted a dog named Rex!"),
    ])
    s2 = Session("session_2", 2, "2023-02-01T10:00:00", [
        Turn("D2:1", "Ana", "Big news: I moved to Lyon."),
        Turn("D2:2", "Ben", "Wow, congrats."),
    ])
    qs = [
        Question("t:q0", "Where does Ana live now?", "Lyon", "single_hop", 4, ["D2:1"], [],
                 question_time="2023-03-01T00:00:00"),
        Question("t:q1", "What is the name of Ben's dog?", "Rex", "single_hop", 4, ["D1:2"], [],
                 question_time="2023-03-01T00:00:00"),
    ]
    return Conversation("toy-1", ["Ana", "Ben"], [s1, s2], qs, [], {})


class ScriptedBackend:
    """Answers the first question right in the toy format and ignores the format on every other one."""

    tokenizer = None

    def __init__(self):
        self.prompts: list = []

    def generate(self, prompts, params):
        self.prompts.extend(prompts)
        out = []
        for p in prompts:
            text = "A: Lyon" if "Q: Where does Ana live now?" in p[-1]["content"] else "no idea"
            out.append([Generation(text, [], [], [], "stop")])
        return out


# ---- the registry ----------------------------------------------------------------------------------------------
def test_registry_names_every_mode_and_refuses_unknown_ones():
    assert modes.names(prompted=True) == ["memory_r1", "compact", "picker", "select", "memory_t1", "short"]
    assert "plain" in modes.names() and not modes.get("plain").prompted
    with pytest.raises(ValueError, match=r"unknown answer mode 'chain_of_thought'; choose one of \['memory_r1'"):
        modes.get("chain_of_thought")
    with pytest.raises(ValueError, match="has no prompt"):
        modes.get("plain", prompted=True)
    with pytest.raises(ValueError, match="already registered"):
        modes.register(AnswerMode("compact", None, None, TOY.parser, TOY.target, TOY.reward))
    # The facts the code used to derive from the names are the modes' own.
    assert [m for m in modes.names() if not modes.get(m).answers] == ["picker"]
    assert [m for m in modes.names() if modes.get(m).reader] == ["select"]
    assert {m: modes.get(m).candidate_source("auto") for m in modes.names(prompted=True)} == {
        "memory_r1": "memories", "compact": "memories", "picker": "turns", "select": "memories",
        "memory_t1": "sessions", "short": "memories"}
    # compact shares memory_r1's parser and reward (and the reward's name in training logs).
    assert make_answer_reward("compact").__name__ == make_answer_reward("memory_r1").__name__ == "memory_r1_reward"


def test_a_registered_toy_mode_is_evaluated_end_to_end(toy):
    backend = ScriptedBackend()
    cfg = EvalConfig(answer_mode="toy", progress=False, bootstrap_samples=0, metrics=["em", "evidence_recall"])
    res = evaluate([conversation()], LLMAnswerer(backend, answer_mode="toy"), config=cfg)
    # Its own prompt template, rendered over its own candidate source (turns, ids "<0>"), recorded by name@version.
    assert len(backend.prompts) == 2
    assert all(p[0]["content"] == "Reply 'A: <answer>'." and p[1]["content"].startswith("Turns:\n<0> ")
               for p in backend.prompts)
    assert res["protocol"]["answerer"]["prompt"] == "toy_answer@3" and res["protocol"]["answerer"]["mode"] == "toy"
    assert "reads turns directly" in res["protocol"]["memory_bank"]
    # Its parser: one answer in the format (right), one not (a format failure, scored leniently: wrong).
    assert res["metrics"]["em"]["overall"] == 0.5
    assert res["format_failures"]["answers_unparsed"] == 1
    # Its candidate rule refuses what it cannot read.
    with pytest.raises(ValueError, match="answer_mode 'toy' selects turns: candidates must be 'turns' or 'auto'"):
        EvalConfig(answer_mode="toy", candidates="sessions").validate()


def test_a_registered_toy_mode_steps_in_the_answer_environment(toy):
    env = AnswerEnv([conversation()], {"answer_mode": "toy"})
    obs, info = env.reset(seed=0, options={"conversation_index": 0, "question_index": 0})
    assert obs.startswith("Reply 'A: <answer>'.\n\nTurns:\n<0> ") and obs.endswith("Q: Where does Ana live now?")
    assert info["row"]["mode"] == "toy" and info["request"].answer_mode == "toy"
    _, reward, terminated, _, info = env.step("A: Lyon")
    assert (reward, terminated, info["parse"]["answer"]) == (1.0, True, "Lyon")
    env.reset(seed=0, options={"conversation_index": 0, "question_index": 0})
    _, reward, _, _, info = env.step("Lyon, I think")
    assert reward == -0.5 and info["reward"] == {"format": -0.5}  # the preset's parse-failure value
    reward_fn = make_answer_reward("toy")
    assert reward_fn.__name__ == "toy_reward" and reward_fn.answer_mode == "toy"
    assert modes.get("toy").target(AnswerParse(answer="Rex", ok=True)) == "A: Rex"  # the SFT target format
    with pytest.raises(ValueError, match="AnswerEnvConfig: answer_mode 'toy' selects turns"):
        as_answer_config({"answer_mode": "toy", "candidates": "memories"})


# ---- one name for the setting; the old key still loads -----------------------------------------------------------
def test_the_old_key_answer_env_mode_still_loads(tmp_path):
    from memrl.train.config import TrainConfig
    from memrl.train.guards import check_resume_config

    assert as_answer_config({"mode": "short"}).answer_mode == "short"
    assert load_config(AnswerEnvConfig, overrides=["mode=picker"]).answer_mode == "picker"
    old = tmp_path / "old.yaml"
    old.write_text("role: answer\nanswer_env:\n  mode: picker\n  candidates: turns\n")
    cfg = load_config(TrainConfig, old)
    assert cfg.answer_env.answer_mode == "picker"
    for key in ("mode", "answer_mode"):  # a later layer overrides under either name
        over = [f"answer_env.{key}=memory_r1", "answer_env.candidates=auto"]
        assert load_config(TrainConfig, old, over).answer_env.answer_mode == "memory_r1"
    with pytest.raises(ConfigError, match=r"'answer_env.mode' and 'answer_env.answer_mode' \(in command line\) name the same"):
        load_config(TrainConfig, old, ["answer_env.mode=compact", "answer_env.answer_mode=compact"])
    # A run saved before the rename resumes under the new name.
    from memrl.config import as_dict, save_resolved

    run = tmp_path / "run"
    save_resolved(cfg, run)
    saved = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(saved.replace("  answer_mode: picker", "  mode: picker"))
    assert "  mode: picker" in (run / "config.yaml").read_text()
    check_resume_config(run, as_dict(cfg), schema=TrainConfig)

"""Versioned prompts (rendering, fidelity to the sources, formatting helpers) and the LLM judge."""

from __future__ import annotations

import json

import pytest

from memrl.data.schema import Session, Turn
from memrl.policies.backends import SamplingParams, render_prompt
from memrl.policies.judge import LLMJudge, parse_judge_label
from memrl.protocol.prompts import (
    PROMPTS,
    format_candidates,
    format_memories_compact,
    format_memories_mem0,
    format_memories_timestamped,
    format_sessions_t1,
    format_turns,
    locomo_time,
    prompt_versions,
    render,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")

MEMS = [("Ana lives in Paris", "2023-05-08T13:56:00"), ("Ana has a dog named Max", None)]
SESSIONS = [
    Session("session_1", 1, "2023-05-08T13:56:00", [Turn("D1:1", "Ana", "I moved to Paris!"),
                                                    Turn("D1:2", "Ben", "Wow, congrats.")]),
    Session("session_2", 2, "2023-06-01T09:00:00", [Turn("D2:1", "Ana", "My dog Max is sick.")]),
]

EXAMPLE_FIELDS = {
    "memory_r1_manager": {"memory": format_memories_mem0(MEMS), "facts": '["Moved to Berlin"]'},
    "compact_manager": {"memories": format_memories_compact(MEMS), "dialogue": format_turns(SESSIONS[1].turns, SESSIONS[1].timestamp)},
    "memory_r1_answer": {"speaker_1": "Ana", "speaker_1_memories": format_memories_timestamped(MEMS),
                             "speaker_2": "Ben", "speaker_2_memories": format_memories_timestamped([]),
                             "question": "Where does Ana live?"},
    "compact_answer": {"memories": format_memories_compact(MEMS), "question": "Where does Ana live?"},
    "compact_select": {"memories": format_memories_compact(MEMS), "question": "Where does Ana live?"},
    "short_answer": {"memories": format_memories_compact(MEMS, long_dates=True), "question": "Where does Ana live?"},
    "memory_t1": {"now": "2023-07-01 10:00:00", "question": "When did Ana move?", "sessions": format_sessions_t1(SESSIONS)},
    "mem0_judge": {"question": "Where does Ana live?", "gold_answer": "Paris", "generated_answer": "In Paris, France"},
    "context_picker": {"question": "Where does Ana live?", "candidates": format_candidates(MEMS)},
}


def test_every_template_renders_and_is_versioned():
    assert set(EXAMPLE_FIELDS) == set(PROMPTS)
    assert prompt_versions() == {n: t.version for n, t in PROMPTS.items()}
    for name, fields in EXAMPLE_FIELDS.items():
        msgs = render(name, **fields)
        assert msgs[-1]["role"] == "user" and all(m["content"] for m in msgs)
        text = "\n".join(m["content"] for m in msgs)
        assert "{" + next(iter(fields)) + "}" not in text  # the field was substituted
        assert PROMPTS[name].source


def test_render_errors_name_the_field():
    with pytest.raises(KeyError, match=r"missing field\(s\) \['question'\]"):
        render("compact_answer", memories="(none)")
    with pytest.raises(KeyError, match=r"unexpected field\(s\) \['questoin'\]"):
        render("compact_answer", memories="(none)", question="q", questoin="q")
    with pytest.raises(KeyError, match="unknown prompt 'nope'"):
        render("nope")


def test_sources_are_quoted_verbatim_where_given():
    mgr = render("memory_r1_manager", **EXAMPLE_FIELDS["memory_r1_manager"])[0]["content"]
    assert mgr.startswith("You are a smart memory manager which controls the memory of a system.\n"
                          "You can perform four operations: (1) add into the memory, (2) update the memory, "
                          "(3) delete from the memory, and (4) no change.")
    assert '"event" : "<Operation to be performed>",    # Must be "ADD", "UPDATE", "DELETE", or "NONE"' in mgr
    assert mgr.rstrip().endswith("Do not return anything except the JSON format.")
    assert '[{"id": "0", "text": "Ana lives in Paris"}, {"id": "1", "text": "Ana has a dog named Max"}]' in mgr
    empty = render("memory_r1_manager", memory=format_memories_mem0([]), facts="[]")[0]["content"]
    assert "Current memory is empty." in empty

    ans = render("memory_r1_answer", **EXAMPLE_FIELDS["memory_r1_answer"])[0]["content"]
    assert ans.startswith("You are an intelligent memory assistant tasked with retrieving accurate information "
                          "from conversation memories.")
    assert "IMPORTANT: Output the final answer after **Answer:**" in ans
    assert "Memories for user Ana:\n\n- 1:56 pm on 8 May, 2023: Ana lives in Paris\n- Ana has a dog named Max" in ans

    judge = render("mem0_judge", **EXAMPLE_FIELDS["mem0_judge"])[0]["content"]
    assert "label an answer to a question as ’CORRECT’ or ’WRONG’" in judge
    assert "Gold answer: Paris\nGenerated answer: In Paris, France" in judge
    assert 'in a json format with the key as "label".' in judge

    t1 = render("memory_t1", **EXAMPLE_FIELDS["memory_t1"])[0]["content"]
    assert '"selected_memory": a list of memory identifiers (e.g., "<session_1>")' in t1
    assert "**User Question:**\n2023-07-01 10:00:00: When did Ana move?" in t1
    assert '```json\n{\n  "selected_memory": ["<relevant_session_or_utterance1>"' in t1


def test_compact_prompts_are_short():
    tok_free_len = lambda name: len("".join(m["content"] for m in render(name, **EXAMPLE_FIELDS[name])))
    assert tok_free_len("compact_manager") < 600 and tok_free_len("compact_answer") < 400
    assert tok_free_len("memory_r1_manager") > 5 * tok_free_len("compact_manager")


def test_formatting_helpers():
    assert locomo_time("2023-06-16T19:20:00") == "7:20 pm on 16 June, 2023"
    assert locomo_time("2023-06-16T00:05:00") == "12:05 am on 16 June, 2023"
    assert locomo_time("sometime in May") == "sometime in May"
    assert format_memories_compact(MEMS) == "[0] Ana lives in Paris (2023-05-08)\n[1] Ana has a dog named Max"
    assert format_memories_compact(MEMS, ids=["3", "7"]).startswith("[3] Ana lives")
    assert format_memories_compact([]) == "(none)"

    class Entry:  # MemoryEntry-like: text + observed_at
        text, observed_at, event_time = "Ben likes chess", "2024-01-02T10:00:00", None

    assert format_memories_compact([Entry()]) == "[0] Ben likes chess (2024-01-02)"
    assert format_turns(SESSIONS[0].turns, SESSIONS[0].timestamp) == \
        "(2023-05-08)\nAna: I moved to Paris!\nBen: Wow, congrats."
    # Memory-T1's own layout: "{time}: <{id}> \n " + " ".join("speaker: time: text\n")
    assert format_sessions_t1(SESSIONS[:1]) == (
        "2023-05-08T13:56:00: <session_1> \n Ana: 2023-05-08T13:56:00: I moved to Paris!\n"
        " Ben: 2023-05-08T13:56:00: Wow, congrats.\n"
    )
    assert format_sessions_t1([s.__dict__ | {"turns": [t.__dict__ for t in s.turns]} for s in SESSIONS]) == \
        format_sessions_t1(SESSIONS)
    assert format_candidates(MEMS, ids=["c1", "c2"]) == "[c1] (2023-05-08) Ana lives in Paris\n[c2] Ana has a dog named Max"


def test_prompts_render_through_the_tiny_chat_template(tiny_backend):
    tok = tiny_backend.tokenizer
    msgs = render("compact_manager", **EXAMPLE_FIELDS["compact_manager"])
    text = tok.decode(render_prompt(tok, msgs))
    assert text.startswith("<|im_start|>system\nYou keep a memory")
    assert text.endswith("My dog Max is sick.<|im_end|>\n<|im_start|>assistant\n")


# ---- judge ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "reply,label",
    [
        ('The answer names the same city. {"label": "CORRECT"}', "CORRECT"),
        ('```json\n{"label": "WRONG"}\n```', "WRONG"),
        ('{"label":"correct"}', "CORRECT"),
        ('Both mention Paris, so CORRECT', "CORRECT"),
        ("It is WRONG.", "WRONG"),
        ('{"explanation": "x", "label": "WRONG"} and then {"label": "CORRECT"}', "CORRECT"),
        ("This is not CORRECT, it is WRONG", None),  # both words, no JSON: Mem0 says this breaks scoring
        ('{"label": "maybe"}', None),
        ("CORRECT: the answer is vague", None),  # a label must close the reply or sit in JSON
        ("", None),
        ("{{{{ not json", None),
    ],
)
def test_parse_judge_label(reply, label):
    assert parse_judge_label(reply) == label


class CountingBackend:
    """Wraps a real backend and counts generate() calls (to prove cache hits cost nothing)."""

    def __init__(self, inner):
        self.inner, self.tokenizer, self.calls, self.prompts = inner, inner.tokenizer, 0, 0

    def generate(self, prompts, params: SamplingParams):
        self.calls += 1
        self.prompts += len(prompts)
        assert params.temperature == 0.0
        return self.inner.generate(prompts, params)


def test_judge_on_the_tiny_model_counts_failures_and_caches(tiny_backend, tmp_path, caplog):
    cache = tmp_path / "judge" / "cache.jsonl"
    backend = CountingBackend(tiny_backend)
    judge = LLMJudge(backend, cache_path=cache, max_tokens=8)
    qs, golds, answers = ["Where does Ana live?", "Dog name?", "Where does Ana live?"], ["Paris", "Max", "Paris"], \
        ["Paris", "Rex", "Paris"]
    scores = judge.judge(qs, golds, answers)
    # An untrained model writes garbage: every reply is a format failure, scored None, never an exception.
    assert len(scores) == 3 and all(s is None or s in (0.0, 1.0) for s in scores)
    assert judge.stats["format_failures"] == sum(s is None for s in scores)
    assert backend.calls == 1 and backend.prompts == 2  # the duplicate item is generated once
    if judge.stats["format_failures"]:
        assert "no CORRECT/WRONG label" in caplog.text
    lines = [json.loads(x) for x in cache.read_text().splitlines()]
    assert len(lines) == 2 and {x["prompt_version"] for x in lines} == {"mem0_judge@1"}

    assert judge.judge(qs, golds, answers) == scores and backend.calls == 1  # cache hit: zero generation
    reloaded = LLMJudge(backend, cache_path=cache, max_tokens=8)
    assert reloaded.judge(qs[:2], golds[:2], answers[:2]) == scores[:2] and backend.calls == 1
    reloaded.judge(["New question?"], ["x"], ["y"])
    assert backend.calls == 2 and len(cache.read_text().splitlines()) == 3

    with open(cache, "a") as f:  # a torn last line (crash mid-write) is skipped, not fatal
        f.write('{"key": "abc", "prompt_ver')
    assert len(LLMJudge(backend, cache_path=cache).cache) == 3


def test_judge_errors():
    with pytest.raises(ValueError, match="needs a generation backend"):
        LLMJudge(None)
    with pytest.raises(ValueError, match="mem0_judge@1"):
        LLMJudge(object(), prompt_version="mem0_judge@0")
    with pytest.raises(ValueError, match="'<name>@<version>'"):
        LLMJudge(object(), prompt_version="mem0")


def test_judge_length_mismatch(tiny_backend):
    with pytest.raises(ValueError, match="lengths differ"):
        LLMJudge(tiny_backend).judge(["q"], ["a", "b"], ["c"])

"""Output parsers on real-looking completions: Mem0 whole lists, compact op lists, fenced / prose-wrapped /
broken JSON, Memory-R1 / Memory-T1 / picker / plain answers, and arbitrary strings (never raise)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memrl.memory.ops import Op
from memrl.protocol import modes
from memrl.protocol.modes import parse_answer_output
from memrl.protocol.parsing import parse_json_lenient, parse_manager_output

# ---- manager: accepted shapes -----------------------------------------------------------------------------
MEM0_PAPER_EXAMPLE = """{"memory": [
   {"id": "0", "text": "Loves cheese and chicken pizza", "event": "UPDATE", "old_memory": "I really like cheese pizza"},
   {"id": "1", "text": "Name is John", "event": "ADD"},
   {"id": "2", "text": "Likes to play cricket", "event": "NONE"},
   {"id": "3", "text": "Dislikes pizza", "event": "DELETE"}
]}"""


def test_mem0_whole_list():
    p = parse_manager_output(MEM0_PAPER_EXAMPLE)
    assert p.ok and p.style == "mem0" and not p.recovered and p.error is None
    assert p.ops == [
        Op("UPDATE", id="0", text="Loves cheese and chicken pizza", old_text="I really like cheese pizza"),
        Op("ADD", id=None, text="Name is John"),  # Mem0's invented "new id" is dropped: the bank assigns ids
        Op("NOOP", id="2", text="Likes to play cricket"),  # NONE == NOOP, keeps the id of the unchanged entry
        Op("DELETE", id="3", text="Dislikes pizza"),
    ]


def test_compact_ops_and_bare_list():
    p = parse_manager_output('{"ops": [{"op": "ADD", "text": "Ana moved to Lisbon", "event_time": "2023-06-01"},'
                             ' {"op": "noop"}, {"op": "update", "id": 4, "text": 12}]}')
    assert p.ok and p.style == "ops"
    assert p.ops == [Op("ADD", text="Ana moved to Lisbon", event_time="2023-06-01"), Op("NOOP"),
                     Op("UPDATE", id="4", text="12")]  # ids and texts coerced to str
    bare = parse_manager_output('[{"event": "DELETE", "id": "7"}, {"op": "NONE", "id": "1", "time": "May 2023"}]')
    assert bare.ok and bare.style == "ops"
    assert bare.ops == [Op("DELETE", id="7"), Op("NOOP", id="1", event_time="May 2023")]
    single = parse_manager_output('{"op": "ADD", "text": "likes tea"}')
    assert single.ok and single.recovered and single.ops == [Op("ADD", text="likes tea")]
    assert parse_manager_output('{"ops": []}').ok
    assert parse_manager_output('{"memory": []}').ok


# ---- manager: recovery --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        # fenced, as chat models write it
        '```json\n{"ops": [{"op": "ADD", "text": "Caroline is a counselor"}]}\n```',
        '```\n{"ops": [{"op": "ADD", "text": "Caroline is a counselor"}]}\n```',
        # prose around the JSON (and a bracket in the prose)
        ('Here are the updates [as requested]:\n{"ops": [{"op": "ADD", "text": "Caroline is a counselor"}]}\n'
        "Let me know if you need anything else!"),
        # a reasoning model's think block first
        ("<think>The user said she is a counselor, so I'll ADD it.</think>\n"
        '{"ops": [{"op": "ADD", "text": "Caroline is a counselor"}]}'),
        # trailing commas
        '{"ops": [{"op": "ADD", "text": "Caroline is a counselor",},],}',
        # single quotes (Python dict repr)
        "{'ops': [{'op': 'ADD', 'text': 'Caroline is a counselor'}]}",
        # truncated: one or two closers missing at the end
        '{"ops": [{"op": "ADD", "text": "Caroline is a counselor"}]',
        '{"ops": [{"op": "ADD", "text": "Caroline is a counselor"}',
        # unclosed fence (generation stopped)
        '```json\n{"ops": [{"op": "ADD", "text": "Caroline is a counselor"}]}',
    ],
)
def test_manager_recovers_unambiguous_json(text):
    p = parse_manager_output(text)
    assert p.ok, p.error
    assert p.recovered
    assert p.ops == [Op("ADD", text="Caroline is a counselor")]


def test_single_quotes_with_apostrophes_and_escapes():
    p = parse_manager_output("""{'ops': [{'op': 'ADD', 'text': "Melanie's dog is named Oscar"}, {'op': 'ADD', 'text': 'She said "hi"'}]}""")
    assert p.ok and [o.text for o in p.ops] == ["Melanie's dog is named Oscar", 'She said "hi"']
    mem0_fenced = "```json\n" + MEM0_PAPER_EXAMPLE + "\n```"
    assert parse_manager_output(mem0_fenced).ops == parse_manager_output(MEM0_PAPER_EXAMPLE).ops


# ---- manager: failures are results, not exceptions ---------------------------------------------------------
@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "empty"),
        ("   \n ", "empty"),
        ("I think we should add that Caroline is a counselor.", "no JSON"),
        ('{"memory": [{"id": "0", "text": "x", "event": "MODIFY"}]}', "unknown operation 'MODIFY'"),
        ('{"memory": [{"id": "0", "text": "x"}]}', "no 'event'/'op'"),
        ('{"ops": [{"op": "UPDATE", "text": "x"}]}', "UPDATE needs an 'id'"),
        ('{"ops": [{"op": "DELETE"}]}', "DELETE needs an 'id'"),
        ('{"ops": [{"op": "ADD", "id": "1"}]}', "ADD needs a 'text'"),
        ('{"ops": ["ADD Caroline is a counselor"]}', "ops[0]: expected an object"),
        ('{"memory": "ADD x"}', "'memory' must be a list"),
        ('{"facts": ["x"]}', "expected a 'memory' or 'ops' list"),
        # two different JSON objects: which one did the model mean?
        ('First try: {"ops": [{"op": "ADD", "text": "a"}]} Actually: {"ops": [{"op": "ADD", "text": "b"}]}',
         "ambiguous"),
        # three closers missing: too truncated to trust
        ('{"ops": [{"op": "ADD", "text": "a", "x": [1, 2', "invalid JSON"),
        # cut inside a string
        ('{"ops": [{"op": "ADD", "text": "Caroline is a coun', "invalid JSON: Unterminated string"),
    ],
)
def test_manager_failures(text, fragment):
    p = parse_manager_output(text)
    assert not p.ok and p.ops == []
    assert fragment in p.error


def test_broken_outer_object_is_not_parsed_as_its_inner_fragment():
    # A missing comma between two items: the first item alone is valid JSON, but taking it would silently
    # drop the second op. The whole output is a format failure instead.
    text = '{"memory": [{"id": "0", "text": "a", "event": "ADD"}, {"id": "1" "text": "b", "event": "ADD"}]}'
    p = parse_manager_output(text)
    assert not p.ok and p.ops == []
    assert p.error.startswith("invalid JSON: Expecting ',' delimiter")


def test_parse_json_lenient_prefers_objects_over_prose_brackets():
    value, recovered, err = parse_json_lenient('See [1] and [2]. {"selected": ["1"]}')
    assert value == {"selected": ["1"]} and recovered and err is None
    assert parse_json_lenient("[[[[[[" * 2000)[0] is None  # deep nesting: no RecursionError


# ---- answers ------------------------------------------------------------------------------------------------
def test_memory_r1_case_study_format():
    text = (
        "**Memories selected as relevant:**\n"
        "• 7:20 pm on 16 June, 2023: John has a special memory of a beach trip with his family\n"
        "• 1:14 pm on 25 May, 2023: Maria loves the ocean\n"
        "**Answer:** beach"
    )
    p = parse_answer_output(text, "memory_r1")
    assert p.ok and p.answer == "beach" and p.selected_ids == []
    assert p.selected_texts[0].startswith("7:20 pm on 16 June, 2023: John has")
    assert len(p.selected_texts) == 2


@pytest.mark.parametrize(
    "text, ids, answer",
    [
        ("[2] [5]\n**Answer:** Paris", ["2", "5"], "Paris"),
        ("Relevant: [3] Caroline went to a support group, [3] again\n**Answer**: 7 May 2023", ["3"], "7 May 2023"),
        ("[1]\n**Answer:**\n\n**the beach**\nBecause the memory says so.", ["1"], "the beach"),
        ("Answer: Paris", [], "Paris"),  # plain marker when no bold one exists
        # the last marker wins (the model restated the instruction first)
        ("I must output the answer after **Answer:** as asked.\n[4]\n**Answer:** Lisbon", ["4"], "Lisbon"),
    ],
)
def test_memory_r1_variants(text, ids, answer):
    p = parse_answer_output(text, "memory_r1")
    assert p.ok and p.selected_ids == ids and p.answer == answer


def test_memory_r1_failures():
    assert parse_answer_output("The answer is Paris.", "memory_r1").error == "no **Answer:** marker"
    assert not parse_answer_output("[1]\n**Answer:**   \n", "memory_r1").ok
    assert parse_answer_output("", "memory_r1").error == "empty output"


def test_memory_t1_json():
    fenced = '```json\n{\n  "selected_memory": ["<session_3>", "session_12", "S4", "\\"I love it\\" said Mel"],\n  "answer": "B  C"\n}\n```'
    p = parse_answer_output(fenced, "memory_t1")
    assert p.ok and p.recovered
    assert p.selected_ids == ["session_3", "session_12", "session_4"]  # the quoted utterance has no session id
    assert p.answer == "B  C"
    as_list = parse_answer_output('{"selected_memory": "<session_1>", "answer": ["A", "C"]}', "memory_t1")
    assert as_list.ok and as_list.selected_ids == ["session_1"] and as_list.answer == "A C"
    no_answer = parse_answer_output('{"selected_memory": []}', "memory_t1")
    assert no_answer.ok and no_answer.answer is None  # scored as a wrong answer, as Memory-T1
    assert not parse_answer_output('["session_1"]', "memory_t1").ok
    assert not parse_answer_output('{"selected_memory": ["<session_1>"] "answer": "B"}', "memory_t1").ok


def test_picker_json():
    p = parse_answer_output(
        'Rationale first.\n{"rationale": "The date is in D1:3 and the place in D2:1.", "selected": ["D1:3", "[D2:1]", 7, "D1:3"]}',
        "picker",
    )
    assert p.ok and p.recovered and p.answer is None
    assert p.rationale.startswith("The date")
    assert p.selected_ids == ["D1:3", "D2:1", "7", "D1:3"]  # order and duplicates kept for the reward
    assert parse_answer_output('{"evidence": ["1"]}', "picker").selected_ids == ["1"]
    assert "no id list" in parse_answer_output('{"rationale": "x"}', "picker").error
    assert "must be a list" in parse_answer_output('{"selected": "1, 2"}', "picker").error
    assert not parse_answer_output('{"selected": ["1", ""]}', "picker").ok


def test_plain_and_unknown_mode():
    assert parse_answer_output("  the beach \n", "plain").answer == "the beach"
    assert not parse_answer_output("  ", "plain").ok
    with pytest.raises(ValueError, match="unknown answer mode"):
        parse_answer_output("x", "chain_of_thought")


# ---- properties -----------------------------------------------------------------------------------------------
_jsonish = st.text(alphabet='{}[]",:\'`\\ \nabctextopidmemoryADUPTENOsession_0123456789', max_size=200)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(st.text(max_size=200), _jsonish))
def test_parsers_never_raise(text):
    m = parse_manager_output(text)
    assert m.ok == (m.error is None)
    assert all(isinstance(o, Op) and o.op in ("ADD", "UPDATE", "DELETE", "NOOP") for o in m.ops)
    assert all(o.id is None or isinstance(o.id, str) for o in m.ops)
    for mode in modes.names():
        a = parse_answer_output(text, mode)
        assert a.ok == (a.error is None)
        assert all(isinstance(i, str) for i in a.selected_ids)
        assert a.answer is None or isinstance(a.answer, str)


@settings(max_examples=100, deadline=None)
@given(ops=st.lists(st.fixed_dictionaries({
    "op": st.sampled_from(["ADD", "UPDATE", "DELETE", "NOOP", "NONE", "add"]),
    "id": st.integers(0, 99).map(str),
    "text": st.text(max_size=30),
}), max_size=6))
def test_compact_round_trip(ops):
    import json

    p = parse_manager_output(json.dumps({"ops": ops}))
    assert p.ok and not p.recovered and len(p.ops) == len(ops)
    fenced = parse_manager_output("```json\n" + json.dumps({"ops": ops}, indent=2) + "\n```")
    assert fenced.ok and fenced.ops == p.ops

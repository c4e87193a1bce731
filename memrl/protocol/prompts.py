"""Every prompt memrl sends to a model, versioned, in one place.

A result is only comparable with another if the prompts were the same, so each template carries a
`version` that evaluation and training record next to their numbers (`PROMPTS[name].version`, or
`prompt_versions()` for all of them). Change the wording -> bump the version.

Templates are chat messages: an optional system message and a user message built with `str.format`
from named fields (literal braces in JSON examples are doubled). `render(name, **fields)` refuses missing
and unexpected fields by name, so a typo cannot silently produce a prompt with a hole in it.

Sources (wording copied where the source gives it):
- Mem0 `mem0/configs/prompts.py` @ 099e325 (Apache-2.0): DEFAULT_UPDATE_MEMORY_PROMPT and
  `get_update_memory_messages`, the memory-manager prompt Memory-R1 adopts (paper Appendix C, Figs. 9-10).
- Mem0 `evaluation/prompts.py` ANSWER_PROMPT, which Memory-R1's answer-agent prompt (Fig. 11) extends with
  two IMPORTANT lines (select memories first; answer after `**Answer:**`; Memory-R1, arXiv 2508.19828, Fig. 11).
- Mem0 `evaluation/metrics/llm_judge.py` ACCURACY_PROMPT: the CORRECT/WRONG judge (Memory-R1 Fig. 12),
  used by `memrl.policies.judge.LLMJudge`.
- Memory-T1 `data/convert_to_sft_verl.py` `build_cot_prompt` (+ the "<session_1>" id form of
  `convert_to_verl_v2.py`): the JSON selected_memory/answer prompt.
- Context-Picker (arXiv 2512.14465) publishes no prompt text; ours follows its described action
  <rationale, minimal evidence id set> with no answer.
- The two `compact_*` templates are ours: short prompts a sub-million-parameter model can learn to follow.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: str
    system: str | None  # None -> the whole prompt is one user message (how the source papers send it)
    user_template: str  # str.format template with named fields
    source: str  # where the wording comes from

    @property
    def fields(self) -> set[str]:
        return {f for _, f, _, _ in string.Formatter().parse(self.user_template) if f}

    def render(self, **fields: Any) -> list[dict[str, str]]:
        missing = self.fields - set(fields)
        extra = set(fields) - self.fields
        if missing or extra:
            raise KeyError(
                f"prompt {self.name!r} v{self.version}: "
                + (f"missing field(s) {sorted(missing)}" if missing else "")
                + ("; " if missing and extra else "")
                + (f"unexpected field(s) {sorted(extra)}" if extra else "")
                + f" (expects {sorted(self.fields)})"
            )
        messages = [{"role": "system", "content": self.system}] if self.system else []
        messages.append({"role": "user", "content": self.user_template.format(**fields)})
        return messages


# ---- Memory-R1 / Mem0 memory manager ------------------------------------------------------------------
# Verbatim Mem0 DEFAULT_UPDATE_MEMORY_PROMPT (mem0/configs/prompts.py @ 099e325). Not a format string.
MEM0_UPDATE_MEMORY_PROMPT = """You are a smart memory manager which controls the memory of a system.
You can perform four operations: (1) add into the memory, (2) update the memory, (3) delete from the memory, and (4) no change.

Based on the above four operations, the memory will change.

Compare newly retrieved facts with the existing memory. For each new fact, decide whether to:
- ADD: Add it to the memory as a new element
- UPDATE: Update an existing memory element
- DELETE: Delete an existing memory element
- NONE: Make no change (if the fact is already present or irrelevant)

There are specific guidelines to select which operation to perform:

1. **Add**: If the retrieved facts contain new information not present in the memory, then you have to add it by generating a new ID in the id field.
- **Example**:
    - Old Memory:
        [
            {
                "id" : "0",
                "text" : "User is a software engineer"
            }
        ]
    - Retrieved facts: ["Name is John"]
    - New Memory:
        {
            "memory" : [
                {
                    "id" : "0",
                    "text" : "User is a software engineer",
                    "event" : "NONE"
                },
                {
                    "id" : "1",
                    "text" : "Name is John",
                    "event" : "ADD"
                }
            ]
        }

2. **Update**: If the retrieved facts contain information that is already present in the memory but the information is totally different, then you have to update it. 
If the retrieved fact contains information that conveys the same thing as the elements present in the memory, then you have to keep the fact which has the most information. 
Example (a) -- if the memory contains "User likes to play cricket" and the retrieved fact is "Loves to play cricket with friends", then update the memory with the retrieved facts.
Example (b) -- if the memory contains "Likes cheese pizza" and the retrieved fact is "Loves cheese pizza", then you do not need to update it because they convey the same information.
If the direction is to update the memory, then you have to update it.
Please keep in mind while updating you have to keep the same ID.
Please note to return the IDs in the output from the input IDs only and do not generate any new ID.
- **Example**:
    - Old Memory:
        [
            {
                "id" : "0",
                "text" : "I really like cheese pizza"
            },
            {
                "id" : "1",
                "text" : "User is a software engineer"
            },
            {
                "id" : "2",
                "text" : "User likes to play cricket"
            }
        ]
    - Retrieved facts: ["Loves chicken pizza", "Loves to play cricket with friends"]
    - New Memory:
        {
        "memory" : [
                {
                    "id" : "0",
                    "text" : "Loves cheese and chicken pizza",
                    "event" : "UPDATE",
                    "old_memory" : "I really like cheese pizza"
                },
                {
                    "id" : "1",
                    "text" : "User is a software engineer",
                    "event" : "NONE"
                },
                {
                    "id" : "2",
                    "text" : "Loves to play cricket with friends",
                    "event" : "UPDATE",
                    "old_memory" : "User likes to play cricket"
                }
            ]
        }


3. **Delete**: If the retrieved facts contain information that contradicts the information present in the memory, then you have to delete it. Or if the direction is to delete the memory, then you have to delete it.
Please note to return the IDs in the output from the input IDs only and do not generate any new ID.
- **Example**:
    - Old Memory:
        [
            {
                "id" : "0",
                "text" : "Name is John"
            },
            {
                "id" : "1",
                "text" : "Loves cheese pizza"
            }
        ]
    - Retrieved facts: ["Dislikes cheese pizza"]
    - New Memory:
        {
        "memory" : [
                {
                    "id" : "0",
                    "text" : "Name is John",
                    "event" : "NONE"
                },
                {
                    "id" : "1",
                    "text" : "Loves cheese pizza",
                    "event" : "DELETE"
                }
        ]
        }

4. **No Change**: If the retrieved facts contain information that is already present in the memory, then you do not need to make any changes.
- **Example**:
    - Old Memory:
        [
            {
                "id" : "0",
                "text" : "Name is John"
            },
            {
                "id" : "1",
                "text" : "Loves cheese pizza"
            }
        ]
    - Retrieved facts: ["Name is John"]
    - New Memory:
        {
        "memory" : [
                {
                    "id" : "0",
                    "text" : "Name is John",
                    "event" : "NONE"
                },
                {
                    "id" : "1",
                    "text" : "Loves cheese pizza",
                    "event" : "NONE"
                }
            ]
        }
"""

# The tail Mem0's `get_update_memory_messages` appends (its f-string, de-indented; wording unchanged).
# {memory} is `format_memories_mem0(...)`: either the "Below is the current content..." block or
# "Current memory is empty."; {facts} is the new facts (Memory-R1) or the new dialogue turn(s).
_MEM0_UPDATE_TAIL = """

{memory}

The new retrieved facts are mentioned in the triple backticks. You have to analyze the new retrieved facts and determine whether these facts should be added, updated, or deleted in the memory.

```
{facts}
```

You must return your response in the following JSON structure only:

{{
    "memory" : [
        {{
            "id" : "<ID of the memory>",                # Use existing ID for updates/deletes, or new ID for additions
            "text" : "<Content of the memory>",         # Content of the memory
            "event" : "<Operation to be performed>",    # Must be "ADD", "UPDATE", "DELETE", or "NONE"
            "old_memory" : "<Old memory content>"       # Required only if the event is "UPDATE"
        }},
        ...
    ]
}}

Follow the instruction mentioned below:
- Do not return anything from the custom few shot prompts provided above.
- If the current memory is empty, then you have to add the new retrieved facts to the memory.
- You should return the updated memory in only JSON format as shown below. The memory key should be the same if no changes are made.
- If there is an addition, generate a new key and add the new memory corresponding to it.
- If there is a deletion, the memory key-value pair should be removed from the memory.
- If there is an update, the ID key should remain the same and only the value needs to be updated.

Do not return anything except the JSON format.
"""


def _escape_braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


# ---- Memory-R1 answer agent -----------------------------------------------------------------------
# Mem0 evaluation/prompts.py ANSWER_PROMPT (instructions 1-8 and the approach verbatim, de-indented) plus
# Memory-R1's two IMPORTANT instructions (Memory-R1, arXiv 2508.19828, Fig. 11), which make
# the model output the memories it selected ("memory distillation") before the answer.
MEMORY_R1_ANSWER = """You are an intelligent memory assistant tasked with retrieving accurate information from conversation memories.

# CONTEXT:
You have access to memories from two speakers in a conversation. These memories contain 
timestamped information that may be relevant to answering the question.

# INSTRUCTIONS:
1. Carefully analyze all provided memories from both speakers
2. Pay special attention to the timestamps to determine the answer
3. If the question asks about a specific event or fact, look for direct evidence in the memories
4. If the memories contain contradictory information, prioritize the most recent memory
5. If there is a question about time references (like "last year", "two months ago", etc.), 
   calculate the actual date based on the memory timestamp. For example, if a memory from 
   4 May 2022 mentions "went to India last year," then the trip occurred in 2021.
6. Always convert relative time references to specific dates, months, or years. For example, 
   convert "last year" to "2022" or "two months ago" to "March 2023" based on the memory 
   timestamp. Ignore the reference while answering the question.
7. Focus only on the content of the memories from both speakers. Do not confuse character 
   names mentioned in memories with the actual users who created those memories.
8. The answer should be less than 5-6 words.
9. IMPORTANT: Select memories you found that are useful for answering the questions, and output it before you answer questions.
10. IMPORTANT: Output the final answer after **Answer:**

# APPROACH (Think step by step):
1. First, examine all memories that contain information related to the question
2. Examine the timestamps and content of these memories carefully
3. Look for explicit mentions of dates, times, locations, or events that answer the question
4. If the answer requires calculation (e.g., converting relative time references), show your work
5. Formulate a precise, concise answer based solely on the evidence in the memories
6. Double-check that your answer directly addresses the question asked
7. Ensure your final answer is specific and avoids vague time references

Memories for user {speaker_1}:

{speaker_1_memories}

Memories for user {speaker_2}:

{speaker_2_memories}

Question: {question}

Answer:
"""

# ---- Memory-T1 ------------------------------------------------------------------------------------
# Memory-T1 data/convert_to_sft_verl.py build_cot_prompt, verbatim except the session id example, which
# follows convert_to_verl_v2.py ("<session_1>"), the RL prompt. {sessions} = format_sessions_t1(...).
MEMORY_T1 = """You are a memory-aware assistant tasked with answering temporal questions based on multi-turn dialogue history.
Output JSON MUST include:
1. "selected_memory": a list of memory identifiers (e.g., "<session_1>") or quoted utterances that are relevant to answering the question.
2. "answer": must strictly follow one of the formats below:
    - Single choice: "A", "B", etc.
    - Multiple choice: "A B C", "B D", etc.
    - Time: "10:45:41 pm, January 15, 2024"
    - Sequence: "(1)(4)(3)(2)"

Important: When analyzing the dialogue history:
- Pay close attention to the temporal relationships between events
- Consider the chronological order of events
- Identify explicit and implicit time references
- Ensure the answer is consistent with selected memory and the temporal context

Now Your Turn

**User Question:**
{now}: {question}

***session memory:** 
{sessions}

**Expected Response:**
```json
{{
  "selected_memory": ["<relevant_session_or_utterance1>", "<relevant_session_or_utterance2>"],
  "answer": "<your generated response in the exact required format>"
}}
```
"""

# ---- Context-Picker ---------------------------------------------------------------------------------
# The paper (arXiv 2512.14465) describes the action as <rationale r, duplicate-free id subset a>, a rubric-
# guided rationale, a minimal sufficient set, no answer; it publishes no prompt text. Ours states exactly that.
CONTEXT_PICKER_SYSTEM = """You select evidence for a question. You do not answer it.
Rubric: (1) work out what information the question needs; (2) find the candidates that supply it, including every piece a multi-step question needs; (3) drop any candidate that is redundant or irrelevant.
Output only JSON: {"rationale": "<one or two sentences on what is needed and where it is>", "selected": ["<id>", ...]}
Select the smallest set of ids that is sufficient to answer the question. Use only ids from the candidates."""

CONTEXT_PICKER_USER = """Question: {question}

Candidates:
{candidates}"""

# ---- LLM judge ----------------------------------------------------------------------------------------
# Verbatim Mem0 evaluation/metrics/llm_judge.py ACCURACY_PROMPT (curly quotes and trailing spaces included),
# which Memory-R1 uses for its J metric (paper Fig. 12). Sent as one user message at temperature 0.
MEM0_JUDGE = """
Your task is to label an answer to a question as ’CORRECT’ or ’WRONG’. You will be given the following data:
    (1) a question (posed by one user to another user), 
    (2) a ’gold’ (ground truth) answer, 
    (3) a generated answer
which you will score as CORRECT/WRONG.

The point of the question is to ask about something one user should know about the other user based on their prior conversations.
The gold answer will usually be a concise and short answer that includes the referenced topic, for example:
Question: Do you remember what I got the last time I went to Hawaii?
Gold answer: A shell necklace
The generated answer might be much longer, but you should be generous with your grading - as long as it touches on the same topic as the gold answer, it should be counted as CORRECT. 

For time related questions, the gold answer will be a specific date, month, year, etc. The generated answer might be much longer or use relative time references (like "last Tuesday" or "next month"), but you should be generous with your grading - as long as it refers to the same date or time period as the gold answer, it should be counted as CORRECT. Even if the format differs (e.g., "May 7th" vs "7 May"), consider it CORRECT if it's the same date.

Now it's time for the real question:
Question: {question}
Gold answer: {gold_answer}
Generated answer: {generated_answer}

First, provide a short (one sentence) explanation of your reasoning, then finish with CORRECT or WRONG. 
Do NOT include both CORRECT and WRONG in your response, or it will break the evaluation script.

Just return the label CORRECT or WRONG in a json format with the key as "label".
"""

# ---- compact prompts for tiny models (ours) ---------------------------------------------------------
COMPACT_MANAGER_SYSTEM = """You keep a memory of facts about the speakers. Read the memories and the new dialogue, then output only JSON:
{"ops":[{"op":"ADD|UPDATE|DELETE|NOOP","id":"<id>","text":"..."}]}
ADD a new fact (no id). UPDATE memory <id> with new text. DELETE memory <id> when it is no longer true. NOOP if nothing changes."""

COMPACT_MANAGER_USER = """Memories:
{memories}
New dialogue:
{dialogue}"""

COMPACT_ANSWER_SYSTEM = """Answer the question from the memories. First list the ids of the memories you used, then write **Answer:** and a short answer.
Example:
[2] [5]
**Answer:** Paris"""

COMPACT_SELECT_SYSTEM = """Pick the memory that answers the question and write its id. A reader answers from that memory.
Example:
[2]"""

SHORT_ANSWER_SYSTEM = """Answer the question using the memories. Reply with the answer only, in a few words (a name, place, date, number or short phrase), not a sentence."""

COMPACT_ANSWER_USER = """Memories:
{memories}
Question: {question}"""


PROMPTS: dict[str, PromptTemplate] = {
    t.name: t
    for t in [
        PromptTemplate(
            name="memory_r1_manager",
            version="1",
            system=None,
            user_template=_escape_braces(MEM0_UPDATE_MEMORY_PROMPT) + _MEM0_UPDATE_TAIL,
            source="Mem0 DEFAULT_UPDATE_MEMORY_PROMPT + get_update_memory_messages @099e325; Memory-R1 Figs. 9-10",
        ),
        PromptTemplate(
            name="compact_manager",
            version="1",
            system=COMPACT_MANAGER_SYSTEM,
            user_template=COMPACT_MANAGER_USER,
            source="memrl (ours): compact op list for tiny models",
        ),
        PromptTemplate(
            name="memory_r1_answer",
            version="1",
            system=None,
            user_template=MEMORY_R1_ANSWER,
            source="Mem0 evaluation/prompts.py ANSWER_PROMPT + Memory-R1 Fig. 11 IMPORTANT lines",
        ),
        PromptTemplate(
            name="compact_answer",
            version="1",
            system=COMPACT_ANSWER_SYSTEM,
            user_template=COMPACT_ANSWER_USER,
            source="memrl (ours): select ids then **Answer:**, for tiny models",
        ),
        PromptTemplate(
            name="compact_select",
            version="1",
            system=COMPACT_SELECT_SYSTEM,
            user_template=COMPACT_ANSWER_USER,
            source="memrl (ours): the id of one memory, read by a frozen extractive reader (answer mode select)",
        ),
        PromptTemplate(
            name="short_answer",
            version="1",
            system=SHORT_ANSWER_SYSTEM,
            user_template=COMPACT_ANSWER_USER,
            source="memrl (ours): the instruct model asked for a few-word answer (the outcome protocol's prompt-only answer agent)",
        ),
        PromptTemplate(
            name="memory_t1",
            version="1",
            system=None,
            user_template=MEMORY_T1,
            source="Memory-T1 data/convert_to_sft_verl.py build_cot_prompt (<session_k> ids as in convert_to_verl_v2)",
        ),
        PromptTemplate(
            name="mem0_judge",
            version="1",
            system=None,
            user_template=MEM0_JUDGE,
            source="Mem0 evaluation/metrics/llm_judge.py ACCURACY_PROMPT; Memory-R1 Fig. 12",
        ),
        PromptTemplate(
            name="context_picker",
            version="1",
            system=CONTEXT_PICKER_SYSTEM,
            user_template=CONTEXT_PICKER_USER,
            source="memrl, after Context-Picker (arXiv 2512.14465) action <rationale, minimal id set>",
        ),
    ]
}


def render(name: str, **fields: Any) -> list[dict[str, str]]:
    """Chat messages for template `name`. Unknown names and missing/extra fields raise KeyError."""
    if name not in PROMPTS:
        raise KeyError(f"unknown prompt {name!r}; known: {sorted(PROMPTS)}")
    return PROMPTS[name].render(**fields)


def prompt_versions() -> dict[str, str]:
    """{template name: version}, to be written into results and run configs."""
    return {name: t.version for name, t in PROMPTS.items()}


# ---- formatting helpers -------------------------------------------------------------------------------
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]


def _parse_iso(time: str | None) -> datetime | None:
    if not time:
        return None
    try:
        return datetime.fromisoformat(time)
    except ValueError:
        return None


def locomo_time(time: str | None) -> str:
    """ISO 8601 -> LoCoMo's own style ('7:20 pm on 16 June, 2023'); unparsable text is returned unchanged."""
    dt = _parse_iso(time)
    if dt is None:
        return time or "unknown time"
    h12 = dt.hour % 12 or 12
    return f"{h12}:{dt.minute:02d} {'am' if dt.hour < 12 else 'pm'} on {dt.day} {MONTHS[dt.month - 1]}, {dt.year}"


def short_date(time: str | None) -> str:
    """ISO 8601 -> '2023-06-16' (a few tokens for tiny models); unparsable text is returned unchanged."""
    dt = _parse_iso(time)
    return dt.date().isoformat() if dt else (time or "")


def _memory_fields(m: Any) -> tuple[str, str | None]:
    """(text, time) from a MemoryEntry-like object, a dict, a (text, time) tuple, or a string."""
    if isinstance(m, str):
        return m, None
    if isinstance(m, (tuple, list)):
        return str(m[0]), (m[1] if len(m) > 1 else None)
    if isinstance(m, dict):
        return str(m["text"]), m.get("event_time") or m.get("observed_at") or m.get("time")
    return str(m.text), getattr(m, "event_time", None) or getattr(m, "observed_at", None)


def format_memories_compact(memories: Sequence[Any], ids: Sequence[str] | None = None, long_dates: bool = False) -> str:
    """`[id] text (date)` lines; ids default to "0", "1", ... in order (the same order `IdMap` numbers).
    Dates are ISO ("2023-05-08") or, with `long_dates`, written as the benchmarks' answers are ("8 May 2023")."""
    if not memories:
        return "(none)"
    ids = list(ids) if ids is not None else [str(i) for i in range(len(memories))]
    lines = []
    for i, m in zip(ids, memories):
        text, time = _memory_fields(m)
        date = (long_date(time) if long_dates else short_date(time)) if time else ""
        lines.append(f"[{i}] {text}" + (f" ({date})" if date else ""))
    return "\n".join(lines)


def long_date(time: str | None) -> str:
    """ISO 8601 -> "8 May 2023" (LoCoMo's and the synthetic data's answer style); unparsable text unchanged."""
    dt = _parse_iso(time)
    return f"{dt.day} {MONTHS[dt.month - 1]} {dt.year}" if dt is not None else (time or "")


def format_memories_timestamped(memories: Sequence[Any]) -> str:
    """Mem0 / Memory-R1 answer-agent style: '- 7:20 pm on 16 June, 2023: text' lines."""
    out = []
    for m in memories:
        text, time = _memory_fields(m)
        out.append(f"- {locomo_time(time)}: {text}" if time else f"- {text}")
    return "\n".join(out)


def format_memories_mem0(memories: Sequence[Any], ids: Sequence[str] | None = None) -> str:
    """The `{memory}` block of Mem0's update prompt: the old memory as a JSON list, or 'Current memory is empty.'"""
    if not memories:
        return "Current memory is empty."
    ids = list(ids) if ids is not None else [str(i) for i in range(len(memories))]
    items = [{"id": i, "text": _memory_fields(m)[0]} for i, m in zip(ids, memories)]
    return (
        "Below is the current content of my memory which I have collected till now. "
        "You have to update it in the following format only:\n\n```\n"
        + json.dumps(items, ensure_ascii=False)
        + "\n```"
    )


def format_turns(turns: Iterable[Any], time: str | None = None) -> str:
    """Dialogue turns as 'Speaker: text' lines, preceded by '(date)' when a time is given."""
    lines = [f"({short_date(time)})"] if time else []
    for t in turns:
        speaker = t["speaker"] if isinstance(t, dict) else t.speaker
        text = t["text"] if isinstance(t, dict) else t.text
        lines.append(f"{speaker}: {text}")
    return "\n".join(lines)


def format_sessions_t1(sessions: Iterable[Any]) -> str:
    """Memory-T1's session rendering (`format_sessions` in its data converter):
    '{session_time}: <{session_id}> \\n ' + ' '.join('speaker: utterance_time: text\\n')."""
    blocks = []
    for s in sessions:
        sid = s["session_id"] if isinstance(s, dict) else s.session_id
        stime = (s.get("timestamp") if isinstance(s, dict) else s.timestamp) or ""
        turns = s["turns"] if isinstance(s, dict) else s.turns
        utts = []
        for t in turns:
            meta = (t.get("meta") if isinstance(t, dict) else t.meta) or {}
            speaker = t["speaker"] if isinstance(t, dict) else t.speaker
            text = t["text"] if isinstance(t, dict) else t.text
            utts.append(f"{speaker}: {meta.get('utterance_date') or meta.get('time') or stime}: {text}\n")
        blocks.append(f"{stime}: <{sid}> \n " + " ".join(utts))
    return "\n".join(blocks)


def format_candidates(candidates: Sequence[Any], ids: Sequence[str] | None = None) -> str:
    """Context-Picker candidates: '[id] (date) text' lines; items are strings, (text, time) or dicts."""
    ids = list(ids) if ids is not None else [str(i) for i in range(len(candidates))]
    lines = []
    for i, c in zip(ids, candidates):
        text, time = _memory_fields(c)
        lines.append(f"[{i}] " + (f"({short_date(time)}) " if time else "") + text)
    return "\n".join(lines)

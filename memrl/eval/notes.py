"""Notes on what a result is, recorded in results.json's protocol and printed in the report.

- `oracle`: True when the answer policy or the manager reads gold information (gold answers, gold evidence
  turns, the synthetic world's gold keys): such a number is an upper bound, not a method's score.
- `notes`: plain sentences, e.g. that LoCoMo's category 5 gold answers were replaced by the abstention answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memrl.data.schema import ABSTAIN_ANSWER

ORACLE_ANSWERERS = {
    "gold_answer": "answers the gold answer",
    "oracle": "answers the gold answer (alias of gold_answer)",
    "oracle_evidence": "reads the gold evidence turns",
}
ORACLE_MANAGERS = {
    "gold_ops": "issues the gold memory operations",
    "rule_based": "reads the synthetic world's gold entry keys to decide UPDATE/DELETE targets "
                  "(rule_based_text is the same heuristic without them)",
    "noisy_teacher": "issues the gold memory operations with injected mistakes",
}


def result_notes(answerer: str | None, manager: str | None, convs: Sequence[Any]) -> dict[str, Any]:
    notes: list[str] = []
    oracle = False
    if answerer in ORACLE_ANSWERERS:
        oracle = True
        notes.append(f"oracle: the answer policy {answerer!r} {ORACLE_ANSWERERS[answerer]}; an upper bound")
    synthetic = any((c.meta or {}).get("source") == "memrl.synth" or c.gold_ops for c in convs)
    if manager in ORACLE_MANAGERS and (manager != "rule_based" or synthetic):  # no world keys, no oracle
        oracle = True
        notes.append(f"oracle: the manager {manager!r} {ORACLE_MANAGERS[manager]}; op accuracy and QA scores "
                     "are an upper bound, not a learned manager's")
    replaced = sum(1 for c in convs for q in c.questions
                   if q.category == "adversarial" and q.answer == ABSTAIN_ANSWER
                   and (c.meta or {}).get("benchmark") == "locomo")
    if replaced:
        notes.append(f"LoCoMo category 5 (adversarial, {replaced} questions): the gold answer is replaced by "
                     f"{ABSTAIN_ANSWER!r} (the release gives a distractor, kept in question.meta.adversarial_answer); "
                     "these questions score 1 only for that abstention answer")
    return {"oracle": oracle, "notes": notes}


def add_notes(protocol: dict[str, Any], convs: Sequence[Any]) -> dict[str, Any]:
    def baseline(block: dict | None) -> str | None:
        return (block or {}).get("name") if (block or {}).get("kind") in ("baseline", "default") else None

    ans, man = baseline(protocol.get("answerer")), baseline(protocol.get("manager"))
    protocol.update(result_notes(ans, man, convs))
    return protocol

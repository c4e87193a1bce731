"""`policy=predictions:FILE`: score a released results file (Memory-T1's TIME-Dial layout) without a model.

The data layer reads the file and keeps each prediction raw (memrl.data.loaders.timedial_results); here it is read
twice: memrl's lenient answer parse of the model output (falling back to the released parse when that finds
nothing), scored by `timedial_acc` and the other answer metrics, and Memory-T1's own extraction of the released
`parsed_output`, scored by `timedial_official`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memrl.data.io import DataError
from memrl.data.loaders.timedial_results import question_key, read_results
from memrl.protocol.parsing import AnswerParse, parse_answer_output
from memrl.rewards.timedial_official import official_answer


def interpret(pred: dict[str, Any]) -> dict[str, Any]:
    """{answer, official_answer, selected_memory} of one raw released prediction."""
    parsed = pred.get("parsed_output") or {}
    lenient = parse_answer_output(pred.get("model_output") or "", "memory_t1")
    selected = parsed.get("selected_memory") if isinstance(parsed, dict) else None
    return {
        "official_answer": official_answer(parsed),
        "answer": lenient.answer if lenient.ok else None,
        "selected_memory": lenient.selected_ids if lenient.ok else
                           [str(s) for s in selected] if isinstance(selected, list) else [],
    }


class PredictionsAnswerer:
    """Replays the predictions of a results file; matched by question_id, else by question text."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.name = f"predictions:{self.path.name}"
        self.by_id: dict[str, dict[str, Any]] = {}
        self.by_question: dict[str, dict[str, Any]] = {}
        for rec in read_results(self.path):
            pred = interpret(rec)
            if rec.get("question_id") is not None:
                self.by_id.setdefault(str(rec["question_id"]), pred)
            self.by_question.setdefault(question_key(rec["question"]), pred)

    def lookup(self, question_id: str, question: str) -> dict[str, Any]:
        pred = self.by_id.get(str(question_id)) or self.by_question.get(question_key(question))
        if pred is None:
            raise DataError(f"{self.path}: no prediction for question {question_id!r} "
                            f"({question.split(chr(10))[0][:60]!r}); the file is matched by question_id, else by "
                            "question text")
        return pred

    def answer(self, requests: list[Any]) -> list[AnswerParse]:
        out = []
        for req in requests:
            q = req.question
            pred = self.lookup(q.question_id, q.question)
            answer = pred["answer"] if pred["answer"] is not None else (pred["official_answer"] or None)
            p = AnswerParse(selected_ids=list(pred["selected_memory"]), answer=answer, ok=answer is not None,
                            error=None if answer is not None else "no answer in the released output")
            p.official_answer = pred["official_answer"]  # what Memory-T1's scorer reads (timedial_official)
            out.append(p)
        return out

"""`policy=predictions:FILE`: score a released results file (Memory-T1's TIME-Dial layout) without a model.

The data layer reads the file and keeps each prediction raw (memrl.data.loaders.timedial_results); here it is read
twice: memrl's lenient answer parse of the model output (falling back to the released parse when that finds
nothing), scored by `timedial_acc` and the other answer metrics, and Memory-T1's own extraction of the released
`parsed_output`, scored by `timedial_official`.

The file is checked as `memrl data convert` checks it (one record per question) and then against the data it is
scored on, before any question is answered (`check_data`): every prediction must be for a question of the data
(by question_id; a record without one, or data whose ids memrl made up from a results file without them, by
question text), a prediction matched by id must be for the same question (its first line agrees), and every
question evaluated must have a prediction. Any of these is a one-line DataError naming
the file and the first offending question.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memrl.data.io import DataError
from memrl.data.loaders.timedial_results import check_unique, question_key, read_results, stem_key
from memrl.protocol import modes
from memrl.protocol.parsing import AnswerParse
from memrl.rewards.timedial_official import official_answer


def interpret(pred: dict[str, Any]) -> dict[str, Any]:
    """{answer, official_answer, selected_memory} of one raw released prediction."""
    parsed = pred.get("parsed_output") or {}
    lenient = modes.MEMORY_T1.parse(pred.get("model_output") or "")  # the released files are Memory-T1's output
    selected = parsed.get("selected_memory") if isinstance(parsed, dict) else None
    return {
        "official_answer": official_answer(parsed),
        "answer": lenient.answer if lenient.ok else None,
        "selected_memory": lenient.selected_ids if lenient.ok else
                           [str(s) for s in selected] if isinstance(selected, list) else [],
    }


def _first_line(text: str) -> str:
    line = " ".join(str(text).split("\n")[0].split())
    return line[:70] + "..." if len(line) > 70 else line


class PredictionsAnswerer:
    """Replays the predictions of a results file; matched by question_id, else by question text."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.name = f"predictions:{self.path.name}"
        self.records = read_results(self.path)
        check_unique(self.records)
        self.by_id: dict[str, dict[str, Any]] = {}
        self.by_question: dict[str, dict[str, Any] | None] = {}  # None: texts shared by differing predictions
        for rec in self.records:
            pred = interpret(rec)
            if rec.get("question_id") is not None:
                self.by_id[str(rec["question_id"])] = pred
            key = question_key(rec["question"])
            if key in self.by_question and self.by_question[key] != pred:
                self.by_question[key] = None
            else:
                self.by_question.setdefault(key, pred)

    def check_data(self, data: Sequence[Any], evaluated: Sequence[Any], skip: set[str] | None = None,
                   source: str = "the data") -> None:
        """Refuse a file that does not belong to the data: see the module docstring.

        data: every conversation loaded (a prediction must be for one of their questions); evaluated: the
        conversations selected for this run (each of their questions outside `skip` needs a prediction).
        """
        ids = {str(q.question_id): q for c in data for q in c.questions}
        texts = {question_key(q.question) for c in data for q in c.questions}
        # A prediction that carries a question_id the data lacks matches by text only a question whose id memrl
        # made up (a results file without ids as the data); otherwise it is for another question.
        texts_without_id = {question_key(q.question) for c in data for q in c.questions
                            if q.meta.get("question_id_from_text")}
        for rec in self.records:
            qid = rec.get("question_id")
            if qid is not None and str(qid) in ids:
                theirs, ours = stem_key(rec["question"]), stem_key(ids[str(qid)].question)
                if theirs != ours:
                    raise DataError(f"{rec['_where']}: a prediction for another question under the same id: the file "
                                    f"asks {_first_line(rec['question'])!r}, {source} asks "
                                    f"{_first_line(ids[str(qid)].question)!r} (a file from another release?)")
            elif question_key(rec["question"]) not in (texts if qid is None else texts_without_id):
                unknown = sum(1 for r in self.records if not self._known(r, ids, texts, texts_without_id))
                raise DataError(f"{rec['_where']}: no such question in {source} ({unknown} of the file's "
                                f"{len(self.records)} predictions are for questions it does not hold); score a "
                                "predictions file on the questions it was made for")
        skip = skip or set()
        asked = [q for c in evaluated for q in c.questions
                 if str(q.category) not in skip and str(q.category_id) not in skip]
        missing = [q for q in asked if self._find(q.question_id, q.question) is None]
        if missing:
            q = missing[0]
            more = f" and {len(missing) - 1} more of the {len(asked)} evaluated" if len(missing) > 1 else ""
            raise DataError(f"{self.path}: no prediction for question {q.question_id!r} ({_first_line(q.question)!r})"
                            f"{more}; the file is matched by question_id, else by question text")

    @staticmethod
    def _known(rec: dict[str, Any], ids: dict[str, Any], texts: set[str], texts_without_id: set[str]) -> bool:
        qid = rec.get("question_id")
        if qid is not None:
            return str(qid) in ids or question_key(rec["question"]) in texts_without_id
        return question_key(rec["question"]) in texts

    def _find(self, question_id: str, question: str) -> dict[str, Any] | None:
        pred = self.by_id.get(str(question_id))
        if pred is None:
            pred = self.by_question.get(question_key(question))
        return pred

    def lookup(self, question_id: str, question: str) -> dict[str, Any]:
        pred = self._find(question_id, question)
        if pred is None:
            if self.by_question.get(question_key(question), False) is None:
                raise DataError(f"{self.path}: question {question_id!r} ({_first_line(question)!r}) has no "
                                "question_id in the file and its text matches records with different predictions")
            raise DataError(f"{self.path}: no prediction for question {question_id!r} ({_first_line(question)!r}); "
                            "the file is matched by question_id, else by question text")
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


__all__ = ["PredictionsAnswerer", "interpret"]

"""Optional paraphrasing of fact-bearing turns through a generation backend, keeping every fact (off by default).

    memrl synth --config configs/synth/default.yaml paraphrase=transformers:/path/to/instruct-model

Templates give variety but a closed vocabulary; an instruct model can rewrite each fact turn in its own
words. A rewrite is accepted only if it provably keeps the turn's content, otherwise the template text stays:
- every value the turn states (turn.meta["mentions"]: names, places, jobs, event phrases) appears verbatim;
- the turn's time expression still resolves to the same date from the session date, and a turn without one
  does not gain one (so gold event times stay right);
- no word that one of the conversation's adversarial questions relies on being absent is introduced;
- it is one line, not empty, and at most three times the original length.
Only turns with meta kind "fact" are rewritten (chit-chat carries nothing worth the model's time), so gold
ops, questions and evidence ids stay valid. Accepted turns get meta["paraphrased"] = True.

Sampling uses a seed per conversation, but generation is only as reproducible as the backend and hardware:
byte-identical reruns are guaranteed for template-only data, not for paraphrased data.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from memrl.data.schema import Conversation
from memrl.data_synth.time_expressions import resolve_time_expression
from memrl.protocol.generation import GenerationBackend, SamplingParams

INSTRUCTION = ("Rewrite the chat message below in your own words, as the same person talking casually. Keep every "
               "name, place, number and time expression exactly as written. Reply with the rewritten message "
               "only, on one line.")


def accept_paraphrase(original: str, candidate: str, meta: dict[str, Any], session_time: str | None,
                      forbidden: Sequence[str] = ()) -> bool:
    """True if `candidate` keeps everything `original` states (see the module docstring)."""
    cand = candidate.strip()
    if not cand or "\n" in cand or len(cand) > 3 * max(len(original), 20) or cand == original.strip():
        return False
    low = cand.lower()
    for value in meta.get("mentions", []):
        if value.lower() not in low:
            return False
    if session_time:
        said = meta.get("time_expressions") or []
        ref = resolve_time_expression(cand, session_time[:10])
        if said:
            want = said[0]
            if ref is None or ref.date != want["date"] or ref.granularity != want["granularity"]:
                return False
        elif ref is not None:
            return False
    words = set(re.findall(r"[a-z0-9'-]+", low))
    orig_low = original.lower()
    for kw in forbidden:
        kw = kw.lower()
        present = kw in low if " " in kw else (kw in words or kw + "s" in words)
        if present and kw not in orig_low:
            return False
    return True


def paraphrase_backend(spec: str, batch_size: int, make_backend: Callable[..., GenerationBackend]) -> GenerationBackend:
    """The backend for `spec` from the factory passed in (`memrl.policies.backends.make_backend`): local
    transformers backends generate `batch_size` prompts per call."""
    if spec.split(":", 1)[0] in ("transformers", "hf") or ":" not in spec:
        return make_backend(spec, batch_size=batch_size)
    return make_backend(spec)


class Paraphraser:
    """Rewrites fact turns of synthesized conversations through the generation backend it is given
    (`paraphrase_backend(spec, ...)` builds one from a spec with the factory the caller passes)."""

    def __init__(self, backend: GenerationBackend, batch_size: int = 16, max_tokens: int = 96,
                 temperature: float = 0.7):
        self.backend = backend
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.temperature = temperature

    def paraphrase(self, conv: Conversation, seed: int = 0) -> dict[str, int]:
        """Rewrite `conv`'s fact turns in place; returns {"tried": n, "accepted": m}."""
        forbidden = [kw for q in conv.questions if q.category == "adversarial" for kw in q.meta.get("keywords", [])]
        todo = [(s, t) for s in conv.sessions for t in s.turns if t.meta.get("kind") == "fact"]
        accepted = 0
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start:start + self.batch_size]
            prompts = [[{"role": "system", "content": INSTRUCTION}, {"role": "user", "content": t.text}]
                       for _, t in batch]
            params = SamplingParams(n=1, temperature=self.temperature, max_tokens=self.max_tokens, stop=["\n"],
                                    seed=seed * 7919 + start)
            outs = self.backend.generate(prompts, params)
            for (s, t), gens in zip(batch, outs):
                cand = gens[0].text.strip()
                if accept_paraphrase(t.text, cand, t.meta, s.timestamp, forbidden):
                    t.meta = dict(t.meta, paraphrased=True, template_text=t.text)
                    t.text = cand
                    accepted += 1
        return {"tried": len(todo), "accepted": accepted}

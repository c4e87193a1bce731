"""Offline synthesis of multi-session dialogues with gold memory operations, questions and evidence.

    world.py      people, facts, and the story of how facts evolve (plan_story)
    render.py     time expressions, utterance templates, the rendering pass (render_dialogue, canonical)
    questions.py  questions by category from what became true (make_questions, CATEGORY_IDS)
    gold_ops.py   gold ADD/UPDATE/DELETE/NOOP per turn (gold_ops_from_records)
    distill.py    greedy leave-one-out minimal sufficient evidence (distill, heuristic_reader)
    paraphrase.py optional fact-preserving paraphrasing through a generation backend
    synth.py      the driver: config -> sharded, resumable dataset directory (run_synthesis; its throughput benchmark is in memrl.bench.synth)
    config.py     SynthConfig; commands.py: `memrl synth` and `memrl synth distill`
"""

from memrl.data_synth.config import SynthConfig
from memrl.data_synth.questions import CATEGORY_IDS
from memrl.data_synth.synth import run_synthesis, synthesize_conversation

__all__ = ["CATEGORY_IDS", "SynthConfig", "run_synthesis",
           "synthesize_conversation"]

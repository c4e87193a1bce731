"""`python scripts/stale_retrieval.py DATA.jsonl [PREDICTIONS.jsonl]`: on synthetic conversations, how often 3+3 BM25
retrieval over an add_only bank (every turn stored) surfaces the stale memory for knowledge_update and
conflict_resolution questions (stale: a turn stating the same fact entry as the question, not its evidence), and,
given an evaluation's predictions.jsonl, the answer agent's LoCoMo F1 in each case. Reads the generator's labels
(fact entries, evidence): an analysis, not something a policy sees. docs/TRAINING.md, "Where the manager stands"."""
import collections
import json
import sys
from pathlib import Path

from memrl.data.loaders import load_conversations
from memrl.envs.answer.candidates import build_requests
from memrl.errors import MemrlError

if not 2 <= len(sys.argv) <= 3 or not all(Path(a).is_file() for a in sys.argv[1:]):
    print(f"usage: python scripts/stale_retrieval.py DATA.jsonl [PREDICTIONS.jsonl] (existing files); got {sys.argv[1:]}",
          file=sys.stderr)
    sys.exit(2)
data = sys.argv[1]
preds = sys.argv[2] if len(sys.argv) > 2 else None
try:
    convs = load_conversations(Path(data))
except MemrlError as e:  # a malformed line: the loader names the file and line
    print(f"stale_retrieval: {e}", file=sys.stderr)
    sys.exit(2)
cfg = {"answer_mode": "short", "candidates": "memories", "k_per_speaker": 3, "manager": "add_only"}
f1 = {}
if preds:
    for line in Path(preds).read_text().splitlines():
        r = json.loads(line)
        f1[r["question_id"]] = r["scores"]["locomo_f1"]
turn_facts = {}
for c in convs:
    for s in c.sessions:
        for t in s.turns:
            turn_facts[(c.conversation_id, t.turn_id)] = set((t.meta or {}).get("facts", []))
stats = collections.defaultdict(lambda: collections.Counter())
f1s = collections.defaultdict(list)
for req, row in build_requests(convs, cfg):
    q = req.question
    cat = q.category
    if cat not in ("knowledge_update", "conflict_resolution"):
        continue
    entry = (q.meta or {}).get("entry")
    cid = req.conversation.conversation_id if req.conversation else row.get("conversation_id")
    ev = set(q.evidence_turn_ids)
    retrieved = {t for cand in req.candidates for t in cand.source_ids}
    stale_all = {tid for (c, tid), fs in turn_facts.items() if c == cid and entry in fs and tid not in ev}
    has_ev, has_stale = bool(retrieved & ev), bool(retrieved & stale_all)
    key = ("ev" if has_ev else "no-ev") + "+" + ("stale" if has_stale else "no-stale")
    stats[cat][key] += 1
    stats[cat]["n"] += 1
    stats[cat]["stale_in_bank"] += bool(stale_all)
    if q.question_id in f1:
        f1s[(cat, key)].append(f1[q.question_id])
for cat, c in stats.items():
    print(cat, dict(c))
for k, v in sorted(f1s.items()):
    print(k, len(v), round(sum(v) / len(v), 3))

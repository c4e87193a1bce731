"""`python scripts/fit_subset.py TRAIN.jsonl N SEED OUT_DIR`: the fit diagnostic's data. N questions drawn at random
(seeded) from a train split, written as OUT_DIR/train.jsonl and, identically, OUT_DIR/validation.jsonl, so that
`memrl demo data=OUT_DIR allow_eval_overlap=true` trains on those questions and evaluates on the same ones: can RL fit
the questions it trains on? A fit diagnostic, never a held-out result (docs/TRAINING.md, "Can RL fit its own
training questions?").

    python scripts/fit_subset.py runs/demo_full_v2/data/train.jsonl 16 0 runs/trainfit/data16
"""
import random
import sys
from pathlib import Path

from memrl.data.io import write_conversations
from memrl.data.loaders import load_conversations
from memrl.errors import MemrlError

args = sys.argv[1:]
if len(args) != 4 or not Path(args[0]).is_file() or not args[1].isdigit() or int(args[1]) < 1 \
        or not args[2].lstrip("-").isdigit() or Path(args[3]).is_file():
    print("usage: python scripts/fit_subset.py TRAIN.jsonl N SEED OUT_DIR (an existing file, N >= 1, an integer seed, "
          f"a directory); got {args}", file=sys.stderr)
    sys.exit(2)
src, n, seed, out = Path(args[0]), int(args[1]), int(args[2]), Path(args[3])
if out.is_dir() and any(out.iterdir()):  # it would overwrite a real split with one that repeats its questions
    print(f"fit_subset: {out} is not empty; give a new or empty directory", file=sys.stderr)
    sys.exit(2)
try:
    convs = load_conversations(src)
except MemrlError as e:  # a malformed line: the loader names the file and line
    print(f"fit_subset: {e}", file=sys.stderr)
    sys.exit(2)
pool = [(ci, q.question_id) for ci, c in enumerate(convs) for q in c.questions]
if n > len(pool):
    print(f"fit_subset: N={n} but {src} holds {len(pool)} questions", file=sys.stderr)
    sys.exit(2)
keep = set(random.Random(seed).sample(pool, n))
subset = [c.__class__(**{**c.__dict__, "questions": [q for q in c.questions if (ci, q.question_id) in keep]})
          for ci, c in enumerate(convs)]
subset = [c for c in subset if c.questions]
out.mkdir(parents=True, exist_ok=True)
for split in ("train", "validation"):
    write_conversations(out / f"{split}.jsonl", subset)
print(f"fit_subset: {n} of {len(pool)} questions of {src} (seed {seed}) -> {out}/train.jsonl and validation.jsonl")

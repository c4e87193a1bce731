"""The synthesis driver: config -> dataset directory.

    memrl synth --config configs/synth/default.yaml out=data/synth num_conversations=1000 seed=0

Pipeline per conversation (pure function of the seed, the conversation index and the content knobs):
    world.plan_story -> render.render_dialogue -> gold_ops.gold_ops_from_records -> questions.make_questions

Scale and resume. Conversation i draws from its own RNG, seeded from (seed, i), so any worker computes
the same conversation and shards can run anywhere in any order. Shard k (conversations
[k*shard_size, (k+1)*shard_size)) is written to out/shards/shard-0000k.jsonl by an atomic rename: a shard
file that exists is complete. A rerun skips complete shards (and removes temp files an interrupted run left
behind), then assembles the dataset from the shard files in index order, so local, Ray and resumed runs
write byte-identical outputs. With Ray on several machines, `out` must be on a shared filesystem.
out/shards/manifest.json records the content knobs; reusing an `out` made with other knobs is refused
unless overwrite=true.

Output: out/{train,validation,test}.jsonl (common schema, one conversation per line), out/hf/ (a
`datasets.DatasetDict` saved with save_to_disk), out/stats.json, out/README.md (dataset card), all written
atomically.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import random
import shutil
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from memrl.data.io import atomic_write, summarize, to_hf_dataset, write_json
from memrl.data.schema import Conversation
from memrl.data_synth.config import SynthConfig
from memrl.data_synth.gold_ops import gold_ops_from_records
from memrl.data_synth.paraphrase import Paraphraser, paraphrase_backend
from memrl.data_synth.questions import CATEGORY_IDS, make_questions
from memrl.data_synth.render import render_dialogue
from memrl.data_synth.shards import read_shard
from memrl.data_synth.world import plan_story
from memrl.dist import make_executor
from memrl.locks import hold_directory

# Bump when a change to the generator changes its output for the same config (recorded in meta and manifest).
GENERATOR_VERSION = 1
SPLITS = ("train", "validation", "test")


class SynthError(RuntimeError):
    """The output directory cannot be used as asked (e.g. it holds shards made with other knobs)."""


# ---- one conversation ---------------------------------------------------------------------------------
def synthesize_conversation(cfg: SynthConfig, index: int) -> Conversation:
    """Conversation `index` of the dataset `cfg` describes. Deterministic: a function of (cfg content, index)."""
    rng = random.Random(f"memrl-synth:{cfg.seed}:{index}")  # str seeds hash with sha512: stable everywhere
    num_sessions = rng.randint(*cfg.sessions_per_conversation)
    lo, hi = (dt.date.fromisoformat(d) for d in cfg.first_session_dates)
    start = lo + dt.timedelta(days=rng.randint(0, (hi - lo).days))
    story = plan_story(rng, cfg, num_sessions, start)
    rendered = render_dialogue(rng, story, cfg)
    cid = f"synth-{cfg.seed}-{index:06d}"
    questions = make_questions(rng, story, rendered.records, rendered.sessions, cfg, cid)
    ops = gold_ops_from_records(rendered.sessions, rendered.records)
    meta = {"source": "memrl.synth", "generator_version": GENERATOR_VERSION, "seed": cfg.seed, "index": index}
    return Conversation(cid, list(story.speakers), rendered.sessions, questions, ops, meta)


def conversation_line(conv: Conversation) -> str:
    """The JSONL line of a conversation: the same text `memrl.data.io.write_conversations` writes.

    `Conversation.to_dict` (dataclasses.asdict) deep-copies every leaf and took 4/5 of the synthesis time.
    json's `default=vars` serializes each dataclass straight from its `__dict__`, whose keys are the fields in
    declaration order, so the text is the same (tests compare the two) without building a copy.
    """
    return json.dumps(conv, default=vars, ensure_ascii=False)


# ---- shards -------------------------------------------------------------------------------------------
def synthesize_shard(task: dict[str, Any]) -> dict[str, Any]:
    """Executor task (top-level, picklable): write conversations [start, stop) to `path` atomically."""
    cfg = SynthConfig(**task["config"])
    paraphraser = None
    if cfg.paraphrase:
        backend = paraphrase_backend(cfg.paraphrase, cfg.paraphrase_batch_size, task["make_backend"])
        paraphraser = Paraphraser(backend, batch_size=cfg.paraphrase_batch_size)
    n = 0
    with atomic_write(task["path"]) as f:
        for i in range(task["start"], task["stop"]):
            conv = synthesize_conversation(cfg, i)
            if paraphraser is not None:
                paraphraser.paraphrase(conv, seed=cfg.seed * 1_000_003 + i)
            f.write(conversation_line(conv))
            f.write("\n")
            n += 1
    return {"shard": task["shard"], "conversations": n}


def _shard_path(out: Path, k: int) -> Path:
    return out / "shards" / f"shard-{k:05d}.jsonl"


def _fingerprint(cfg: SynthConfig) -> str:
    blob = json.dumps({"generator_version": GENERATOR_VERSION, **cfg.content()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _prepare_shard_dir(cfg: SynthConfig, out: Path) -> None:
    """Check the manifest against the config, drop stale shards if allowed, clean leftover temp files."""
    shards = out / "shards"
    manifest = shards / "manifest.json"
    want = {"fingerprint": _fingerprint(cfg), "generator_version": GENERATOR_VERSION,
            "shard_size": cfg.shard_size, "content": cfg.content()}
    if manifest.exists():
        have = json.loads(manifest.read_text(encoding="utf-8"))
        same = have.get("fingerprint") == want["fingerprint"] and have.get("shard_size") == cfg.shard_size
        if not same:
            if not cfg.overwrite:
                diff = sorted(k for k in set(want["content"]) | set(have.get("content", {}))
                              if want["content"].get(k) != have.get("content", {}).get(k))
                if have.get("shard_size") != cfg.shard_size:
                    diff.append("shard_size")
                raise SynthError(f"{out} holds shards made with a different config (differs in: "
                                 f"{', '.join(diff) or 'generator version'}); use another out= or overwrite=true")
            shutil.rmtree(shards)
    shards.mkdir(parents=True, exist_ok=True)
    for tmp in shards.glob(".*.tmp"):  # an interrupted atomic write
        tmp.unlink()
    if not manifest.exists():
        write_json(manifest, want)


def make_executor_for(kind: str, num_workers: int, address: str | None = None, progress: bool = False):
    return make_executor(kind, num_workers=num_workers, address=address, progress=progress)


def run_synthesis(cfg: SynthConfig, executor=None, log=print, make_backend=None) -> dict[str, Any]:
    """Synthesize (or resume) the dataset `cfg` describes into cfg.out; return its statistics.

    `make_backend` (spec -> generation backend, e.g. `memrl.policies.backends.make_backend`) is needed only with
    `cfg.paraphrase`; it travels to the workers with each shard task."""
    cfg.validate()
    if cfg.paraphrase and make_backend is None:
        raise SynthError(f"paraphrase={cfg.paraphrase!r} needs a generation backend factory: pass "
                         "run_synthesis(..., make_backend=memrl.policies.backends.make_backend)")
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise SynthError(f"out={out} is an existing file; synth writes a directory: give a new or existing directory")
    with hold_directory(out, "memrl synth"):  # two syntheses into one directory raced on its manifest
        return _synthesize_into(cfg, out, executor, log, make_backend)


def _synthesize_into(cfg: SynthConfig, out: Path, executor, log, make_backend) -> dict[str, Any]:
    _prepare_shard_dir(cfg, out)
    num_shards = (cfg.num_conversations + cfg.shard_size - 1) // cfg.shard_size
    content = asdict(cfg)
    tasks = []
    for k in range(num_shards):
        path = _shard_path(out, k)
        if not path.exists():
            tasks.append({"config": content, "shard": k, "start": k * cfg.shard_size,
                          "stop": min(cfg.num_conversations, (k + 1) * cfg.shard_size), "path": str(path),
                          "make_backend": make_backend})
    if log:
        log(f"synth: {num_shards} shards, {num_shards - len(tasks)} already complete, {len(tasks)} to run "
            f"({cfg.executor}, {cfg.num_workers} worker(s))")
    t0 = time.perf_counter()
    if tasks:
        own = executor is None
        # A progress bar per shard (on stderr) when the run logs at all: 1,500 conversations take ~45 s.
        ex = executor or make_executor_for(cfg.executor, cfg.num_workers, cfg.ray_address, progress=bool(log))
        try:
            ex.map(synthesize_shard, tasks)
        finally:
            if own and cfg.executor == "ray":
                ex.shutdown()
    elapsed = time.perf_counter() - t0
    stats = assemble(cfg, num_shards)
    if log:
        rate = sum(t["stop"] - t["start"] for t in tasks) / elapsed if tasks and elapsed > 0 else 0.0
        log(f"synth: wrote {stats['conversations']} conversations to {out} "
            f"({stats['questions']} questions; {rate:.1f} conversations/s this run)")
    return stats


# ---- assembly -----------------------------------------------------------------------------------------
def split_assignment(cfg: SynthConfig) -> dict[int, str]:
    """Conversation index -> split. A seeded permutation cut at the fractions: no conversation in two splits."""
    n = cfg.num_conversations
    order = list(range(n))
    random.Random(f"memrl-split:{cfg.seed}").shuffle(order)
    n_val = round(n * cfg.split_fractions.get("validation", 0.0))
    n_test = round(n * cfg.split_fractions.get("test", 0.0))
    if n_val + n_test > n:
        n_test = n - n_val
    out = {}
    for rank, i in enumerate(order):
        out[i] = "validation" if rank < n_val else ("test" if rank < n_val + n_test else "train")
    return out


def assemble(cfg: SynthConfig, num_shards: int) -> dict[str, Any]:
    out = Path(cfg.out)
    lines: list[str] = []
    for k in range(num_shards):
        n = min(cfg.num_conversations, (k + 1) * cfg.shard_size) - k * cfg.shard_size
        lines.extend(read_shard(_shard_path(out, k), expected=n))
    if len(lines) != cfg.num_conversations:
        raise SynthError(f"{out}/shards holds {len(lines)} conversations, expected {cfg.num_conversations}")
    where = split_assignment(cfg)
    by_split: dict[str, list[str]] = {s: [] for s in SPLITS}
    for i, line in enumerate(lines):
        by_split[where[i]].append(line)
    convs = {s: [Conversation.from_dict(json.loads(line)) for line in by_split[s]] for s in SPLITS}
    for s in SPLITS:
        with atomic_write(out / f"{s}.jsonl") as f:
            for line in by_split[s]:
                f.write(line)
                f.write("\n")
    _save_hf(out / "hf", convs)
    stats = dataset_stats(convs)
    write_json(out / "stats.json", stats)
    with atomic_write(out / "README.md") as f:
        f.write(dataset_card(cfg, stats))
    return stats


def _save_hf(target: Path, convs: dict[str, list[Conversation]]) -> None:
    """save_to_disk into a temp sibling and swap it in, so a crash never leaves half a dataset."""
    import datasets

    # An empty split is left out: datasets 5.2 saves an empty Dataset but cannot load it back (IndexError in
    # concat_tables). The JSONL files always have all three splits.
    dd = datasets.DatasetDict({s: to_hf_dataset(convs[s]) for s in SPLITS if convs[s]})
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()  # a progress bar per split on stderr says nothing the log line does not
    try:
        dd.save_to_disk(str(tmp))
    finally:
        if not was_disabled:
            enable_progress_bars()
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def _whitespace_tokens(text: str) -> int:
    return len(text.split())


def dataset_stats(convs_by_split: dict[str, list[Conversation]]) -> dict[str, Any]:
    """Counts for stats.json and the card. Tokens are whitespace-separated words (not model tokens)."""
    allc = [c for s in SPLITS for c in convs_by_split[s]]
    base = summarize(allc)
    kinds: Counter = Counter()
    qkinds: Counter = Counter()
    tok_dialogue = tok_questions = tok_answers = tok_memory = 0
    for c in allc:
        for s in c.sessions:
            for t in s.turns:
                kinds[t.meta.get("kind", "?")] += 1
                tok_dialogue += _whitespace_tokens(t.text)
        for q in c.questions:
            qkinds[f"{q.category}/{q.meta.get('kind', '?')}"] += 1
            tok_questions += _whitespace_tokens(q.question)
            tok_answers += _whitespace_tokens(q.answer)
        for o in c.gold_ops:
            if o.op in ("ADD", "UPDATE") and o.text:
                tok_memory += _whitespace_tokens(o.text)
    n = max(1, len(allc))
    return {
        **base,
        "splits": {s: {"conversations": len(convs_by_split[s]),
                       "questions": sum(len(c.questions) for c in convs_by_split[s])} for s in SPLITS},
        "sessions_per_conversation": round(base["sessions"] / n, 2),
        "turns_per_conversation": round(base["turns"] / n, 2),
        "turns_by_kind": dict(sorted(kinds.items())),
        "questions_by_kind": dict(sorted(qkinds.items())),
        "tokens": {"tokenizer": "whitespace", "dialogue": tok_dialogue, "questions": tok_questions,
                   "answers": tok_answers, "gold_memory_text": tok_memory,
                   "dialogue_per_conversation": round(tok_dialogue / n, 1)},
    }


def dataset_card(cfg: SynthConfig, stats: dict[str, Any]) -> str:
    import yaml

    cats = "\n".join(f"| {cid} | {name} | {stats['questions_by_category'].get(f'{cid} {name}', 0)} |"
                     for name, cid in sorted(CATEGORY_IDS.items(), key=lambda kv: kv[1]))
    ops = ", ".join(f"{k} {v}" for k, v in stats["gold_ops_by_type"].items())
    splits = ", ".join(f"{s} {v['conversations']} conversations / {v['questions']} questions"
                       for s, v in stats["splits"].items())
    config_yaml = yaml.safe_dump(asdict(cfg), sort_keys=False).rstrip()
    return f"""---
license: apache-2.0
language: [en]
pretty_name: memrl synthetic multi-session dialogues
tags: [memory, long-term-dialogue, synthetic]
---
# memrl synthetic multi-session dialogues

Made offline by `memrl synth` (generator version {GENERATOR_VERSION}); the config below regenerates it
byte for byte (`memrl synth --config <this config as YAML>`). No model and no human wrote any of it:
templates over a sampled world, so every label is right by construction.

## What is in it
Two-speaker (configurable) conversations over sessions weeks apart. Facts about the speakers are
introduced, repeated, refined, changed, corrected ("actually, it was ..."), and retracted or ended; past
events and future plans carry relative time expressions ("last Tuesday", "two weeks ago", "next month")
resolved against the session date; chit-chat and distractors mention third parties' similar facts.

Splits (by conversation, none in two splits): {splits}.

## Files
- `train.jsonl`, `validation.jsonl`, `test.jsonl`: one conversation per line in memrl's common schema
  (`memrl.data.schema`): conversation_id, speakers, sessions[{{session_id, index, timestamp, turns[{{turn_id
  "D<session>:<k>", speaker, text, meta}}]}}], questions[...], gold_ops[...], meta.
- `hf/`: the same as a `datasets.DatasetDict` (columns conversation_id, num_sessions, num_turns,
  num_questions, json); read with `memrl.data.io.read_hf`.
- `stats.json`: the numbers below; `shards/`: the per-shard files the dataset was assembled from.

Turn `meta` is generation metadata (`kind`: fact / chitchat / reaction / distractor; `facts`: world keys;
`mentions`: the value strings the turn states; `time_expressions`: text, resolved ISO date, granularity).
Never show it to a policy: it is as good as a label.

## Gold operations
Per turn, the ops a perfect memory manager issues (`gold_ops`: turn_id, op, entry = world key such as
"Ana/city", text = canonical memory text with dates resolved, event_time): ADD when a fact about a speaker
is first stated, UPDATE when refined, changed or corrected, DELETE when retracted or ended, NOOP on the entry
when repeated, and a NOOP with entry "" for chit-chat, reactions and third-party news.
Counts: {ops}.

## Questions
Each has answer, evidence turn and session ids, question_time (23:59 of the day of the session it is asked
after; "current" means current then), time_range for dated questions, and meta (kind, entry keys).
Category ids reuse LoCoMo's where the category is LoCoMo's (1 multi-hop, 2 temporal, 4 single-hop,
5 adversarial), so LoCoMo's scorer treats them the LoCoMo way; 6-8 are new.

| id | category | questions |
|---|---|---|
{cats}

Adversarial answers are "Not mentioned in the conversation" and ask about attributes or people the dialogue
never mentions (checked against the text).

## Statistics
- conversations {stats['conversations']}, sessions {stats['sessions']}, turns {stats['turns']},
  questions {stats['questions']}
- per conversation: {stats['sessions_per_conversation']} sessions, {stats['turns_per_conversation']} turns,
  {stats['tokens']['dialogue_per_conversation']} dialogue tokens
- tokens (whitespace-separated words, not model tokens): dialogue {stats['tokens']['dialogue']},
  questions {stats['tokens']['questions']}, answers {stats['tokens']['answers']},
  gold memory text {stats['tokens']['gold_memory_text']}
- turns by kind: {', '.join(f'{k} {v}' for k, v in stats['turns_by_kind'].items())}

## Limitations
Template English with a closed vocabulary; facts are about the speakers only; one correction per fact,
soon after it was stated; dates resolve by the conventions written in `memrl/data_synth/render.py`.
Good for training and for op-level metrics, not a substitute for LoCoMo / LongMemEval evaluation.

## Config
```yaml
{config_yaml}
```
"""

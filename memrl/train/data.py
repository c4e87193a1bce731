"""Training rows for each role, built from conversations through the environments.

- SFT rows: `{"prompt": [chat messages], "completion": [assistant message]}` from a teacher's traces (TRL's
  prompt-completion format: the loss is on the completion only).
- RL rows: the environments' exports. Manager: `snapshot_dataset` rows (a bank state + the next step +
  probe questions), scored by `ManagerSnapshotReward`. Answer: `answer_dataset` rows, scored by the answer
  environment's composite reward.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Sequence

from memrl.data.io import DataError
from memrl.data.loaders import load_conversations
from memrl.data.schema import Conversation
from memrl.envs.answer.candidates import answer_dataset, build_requests
from memrl.envs.manager.episode import ManagerEpisode
from memrl.policies.baselines import bank_builder, make_baseline
from memrl.policies.llm import make_policy
from memrl.protocol import modes
from memrl.protocol.steps import render_manager_prompt
from memrl.train.snapshots import snapshot_dataset


def load_split(path: str, split: str, max_conversations: int = 0) -> list[Conversation]:
    """A split of a `memrl synth` directory (`<dir>/<split>.jsonl`), or a JSONL file as it is."""
    if not path:
        raise DataError("data.path is empty: point it at a `memrl synth` output directory or a JSONL file")
    convs = load_conversations(path, split=split)
    if not convs:
        where = f"{path}/{split}.jsonl" if Path(path).is_dir() else path
        raise DataError(f"{where}: no conversations (split {split!r} is empty; nothing to train on)")
    return convs[:max_conversations] if max_conversations else convs


def split_files(path: str, split: str) -> list[Path]:
    """The files `load_split(path, split)` reads: `<dir>/<split>.jsonl` of a `memrl synth` directory, or the
    file itself (every file of a `datasets` directory)."""
    p = Path(path)
    if p.is_dir():
        f = p / f"{split}.jsonl"
        return [f] if f.exists() else sorted(x for x in p.rglob("*") if x.is_file())
    return [p]


def shorten_ops(completion: str, step) -> str:
    """Drop what the environment can infer, so a tiny model writes fewer tokens.

    An ADD/UPDATE whose text is the step's only candidate fact may omit the text (the environment fills
    it in, with the fact's event time). Real-model recipes keep the full form (`short_ops=False`)."""
    try:
        ops = json.loads(completion)["ops"]
    except (ValueError, KeyError, TypeError):
        return completion
    facts = [f.text for f in step.facts]
    out = []
    for op in ops:
        op = dict(op)
        if len(facts) == 1 and op.get("text") == facts[0]:
            op.pop("text", None)
            op.pop("event_time", None)
        out.append(op)
    return json.dumps({"ops": out}, separators=(",", ":"))


def make_teacher(role: str, spec: str, error_rate: float = 0.3, seed: int = 0, wrong_id_share: float = 0.5,
                 **policy_kwargs):

    if spec == "noisy_teacher":
        return make_baseline("noisy_teacher", error_rate=error_rate, seed=seed, wrong_id_share=wrong_id_share)
    return make_policy(spec, role, **policy_kwargs)


def manager_sft_rows(convs: Sequence[Conversation], env_cfg, teacher, short_ops: bool = True) -> list[dict]:
    """The teacher drives each conversation; every step becomes (prompt, teacher completion)."""

    rows = []
    for conv in convs:
        ep = ManagerEpisode(conv, env_cfg)
        while not ep.done:
            step = ep.observe()
            text = teacher.decide([step])[0]
            ep.apply(text, score=False)
            if short_ops:
                text = shorten_ops(text, step)
            rows.append({"prompt": render_manager_prompt(step, env_cfg.prompt),
                         "completion": [{"role": "assistant", "content": text}]})
    return rows


def answer_text(parse, answer_mode: str) -> str:
    """An answerer's output rendered in the completion format of `answer_mode` (what the policy must write)."""
    return modes.get(answer_mode).target(parse)


def answer_sft_rows(convs: Sequence[Conversation], env_cfg, teacher, manager=None) -> list[dict]:

    pairs = build_requests(convs, env_cfg, manager if manager is not None else bank_builder(env_cfg.manager))
    parses = teacher.answer([r for r, _ in pairs])
    mode = modes.get(env_cfg.answer_mode, prompted=True)
    return [{"prompt": mode.render(r), "completion": [{"role": "assistant", "content": mode.target(p)}]}
            for (r, _), p in zip(pairs, parses)]


def manager_rl_dataset(convs, env_cfg, seed: int = 0, max_rows: int = 0, manager=None, focus: float = 0.0,
                       probed_only: bool = False, start_steps: int = 0):
    """Snapshot rows for GRPO/PPO.

    `probed_only` keeps the rows whose step has QA probes (questions whose evidence is this step's turn):
    Memory-R1's outcome reward exists only there. Without it most rows (no probe) score only validity and
    bank size, their GRPO groups have no reward variance from the answers, and the size term pulls towards
    writing nothing. `start_steps` keeps each conversation's first N steps as well: banks that are empty or
    nearly so, which probe-linked steps (mostly later in a dialogue) rarely show, and where an op on an id is
    rejected.

    `focus` is the share of rows drawn from steps whose gold ops change an existing memory (UPDATE or
    DELETE). Most steps are plain ADDs or NOOPs that an SFT start already gets right, so their GRPO groups
    have zero reward variance and teach nothing; the changes are where the manager's decisions matter
    (the knowledge-update and conflict questions depend on them). 0 keeps the natural mix."""

    ds = snapshot_dataset(convs, env_cfg, manager=manager, seed=seed)
    if probed_only and len(ds):
        keep = [i for i, (p, step) in enumerate(zip(ds["probes"], ds["step_index"]))
                if json.loads(p) or step < start_steps]
        if not keep:
            raise ValueError("probed_only: no step of these conversations has a QA probe (manager_env.probes="
                             f"{env_cfg.probes!r}, max_probes={env_cfg.max_probes}; questions need evidence turns)")
        ds = ds.select(keep)
    if focus > 0 and len(ds):
        changes = [i for i, g in enumerate(ds["gold_ops"]) if any(o["op"] in ("UPDATE", "DELETE") for o in json.loads(g))]
        change_set = set(changes)
        rest = [i for i in range(len(ds)) if i not in change_set]
        total = max_rows or len(ds)
        n_change = min(len(changes), int(round(focus * total)))
        n_rest = min(len(rest), total - n_change)
        rng = random.Random(seed)
        idx = sorted(rng.sample(changes, n_change) + rng.sample(rest, n_rest))
        return ds.select(idx)
    return _cap(ds, max_rows, seed)


def answer_rl_dataset(convs, env_cfg, seed: int = 0, max_rows: int = 0, manager=None):

    ds = answer_dataset(convs, env_cfg, manager=manager if manager is not None else bank_builder(env_cfg.manager))
    return _cap(ds, max_rows, seed)


def _cap(ds, max_rows: int, seed: int):
    if max_rows and len(ds) > max_rows:
        idx = list(range(len(ds)))
        random.Random(seed).shuffle(idx)
        ds = ds.select(sorted(idx[:max_rows]))
    return ds


def corpus_from_rows(*row_lists: Sequence[dict[str, Any]], limit: int = 20000) -> list[str]:
    """Text for training the tiny tokenizer: the prompts and completions the model will see."""
    out: list[str] = []
    for rows in row_lists:
        for r in rows:
            for m in list(r.get("prompt", [])) + list(r.get("completion", [])):
                out.extend(line for line in m["content"].split("\n") if line.strip())
            if len(out) >= limit:
                return out[:limit]
    return out

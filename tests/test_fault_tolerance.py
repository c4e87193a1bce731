"""Fault tolerance, for real: SIGKILL in the middle of `memrl synth` and `memrl eval` then a rerun; truncated dataset
and checkpoint files; a Ray worker process that dies; malformed input fuzzed into the loaders and the config parser.

Each interruption test checks that the kill landed mid-run (the process was alive, with some but not all of its
work on disk), so a machine fast enough to finish first cannot make it pass vacuously.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from memrl.config import ConfigError, load_config
from memrl.data.io import DataError, read_conversations, write_conversations

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO)}


def _memrl(*args: str) -> list[str]:
    return [sys.executable, "-m", "memrl.cli", *args]


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 120.0) -> None:
    """SIGKILL `proc` as soon as `ready()` is true; fail if the process ended (or never got there) first."""
    t0 = time.monotonic()
    while not ready():
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"the process finished (rc {proc.returncode}) before it could be interrupted:\n{out[-2000:]}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            pytest.fail("the process never reached the point where it should be interrupted")
        time.sleep(0.01)
    assert proc.poll() is None, "finished before the kill"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


# ---- interrupted synthesis ------------------------------------------------------------------------------------
SYNTH_ARGS = ["num_conversations=60", "shard_size=4", "seed=3", "sessions_per_conversation=[14,14]",
              "turns_per_session=[16,16]"]


def _synth_outputs(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in ("train.jsonl", "validation.jsonl", "test.jsonl", "stats.json")}


@pytest.mark.slow
def test_synth_killed_midway_resumes_to_identical_output(tmp_path):
    from memrl.cli import main as cli_main

    reference = tmp_path / "reference"
    assert cli_main(["synth", f"out={reference}", *SYNTH_ARGS]) == 0
    expected = _synth_outputs(reference)

    out = tmp_path / "interrupted"
    shards = out / "shards"
    proc = subprocess.Popen(_memrl("synth", f"out={out}", *SYNTH_ARGS), cwd=REPO, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _kill_when(proc, lambda: len(list(shards.glob("shard-*.jsonl"))) >= 3)
    done = sorted(p.name for p in shards.glob("shard-*.jsonl"))
    assert 3 <= len(done) < 15, done  # some shards complete, not all: the kill landed mid-run
    assert not (out / "train.jsonl").exists()

    proc = subprocess.run(_memrl("synth", f"out={out}", *SYNTH_ARGS), cwd=REPO, env=ENV, text=True,
                          capture_output=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{len(done)} already complete" in proc.stdout + proc.stderr  # it resumed rather than starting over
    assert _synth_outputs(out) == expected  # byte-identical to the uninterrupted run
    ids = [c.conversation_id for split in ("train", "validation", "test") for c in read_conversations(out / f"{split}.jsonl")]
    assert sorted(ids) == [f"synth-3-{i:06d}" for i in range(60)]  # none missing, none twice
    assert not list(shards.glob(".*.tmp"))  # the killed run's half-written shard was cleaned up


# ---- interrupted evaluation -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def eval_data(tmp_path_factory, conv26_path):
    """Six copies (one shard each) of LoCoMo conv-26's first 8 sessions and their questions, as JSONL."""
    from memrl.data.loaders import load_locomo
    from memrl.data.schema import Conversation

    conv = load_locomo(conv26_path)[0].to_dict()
    conv["sessions"] = conv["sessions"][:8]
    kept = {t["turn_id"] for s in conv["sessions"] for t in s["turns"]}
    conv["questions"] = [q for q in conv["questions"] if q["evidence_turn_ids"] and set(q["evidence_turn_ids"]) <= kept]
    convs = []
    for k in range(6):
        d = json.loads(json.dumps(conv))
        d["conversation_id"] = f"conv-26-copy{k}"
        convs.append(Conversation.from_dict(d))
    path = tmp_path_factory.mktemp("eval_data") / "conv26x6.jsonl"
    write_conversations(path, convs)
    return path


def _comparable(results: dict) -> dict:
    return {"metrics": results["metrics"], "counts": results["counts"]}


@pytest.mark.slow
def test_eval_killed_midway_resumes_to_identical_results(eval_data, tmp_path):
    from memrl.eval import EvalConfig, evaluate

    expected = evaluate(read_conversations(eval_data), "bm25", config=EvalConfig(progress=False, bootstrap_samples=200))

    out = tmp_path / "eval"
    cache = out / "cache"
    args = ["eval", f"data={eval_data}", "policy=bm25", f"out={out}", "progress=false", "bootstrap_samples=200"]
    proc = subprocess.Popen(_memrl(*args), cwd=REPO, env=ENV, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    _kill_when(proc, lambda: cache.exists() and len(list(cache.glob("*.json"))) >= 2)
    cached = sorted(p.name for p in cache.glob("*.json"))
    assert 2 <= len(cached) < 6, cached
    assert not (out / "results.json").exists()

    proc = subprocess.run(_memrl(*args), cwd=REPO, env=ENV, text=True, capture_output=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["efficiency"]["conversations_from_cache"] == len(cached)  # resumed, not redone
    assert _comparable(results) == _comparable(expected)
    uids = [json.loads(line)["uid"] for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(uids) == len(set(uids)) == results["counts"]["questions"]  # no question lost or answered twice


# ---- truncated files ------------------------------------------------------------------------------------------
def _synthetic(n: int):
    from memrl.data_synth.config import SynthConfig
    from memrl.data_synth.synth import synthesize_conversation

    cfg = SynthConfig(seed=5, sessions_per_conversation=[2, 2], turns_per_session=[6, 6])
    return [synthesize_conversation(cfg, i) for i in range(n)]


def test_truncated_jsonl_names_file_and_line(tmp_path, capsys):
    path = tmp_path / "data.jsonl"
    write_conversations(path, _synthetic(3))
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + lines[1][: len(lines[1]) // 2])  # cut in the middle of line 2
    with pytest.raises(DataError, match=rf"{path}:2: invalid JSON.*truncated"):
        read_conversations(path)
    from memrl.cli import main as cli_main

    try:  # `memrl data` exits through SystemExit(2); other commands return 2 from cli.main
        rc = cli_main(["data", "stats", str(path)])
    except SystemExit as e:
        rc = e.code
    assert rc == 2
    assert f"{path}:2" in capsys.readouterr().err


@pytest.fixture(scope="module")
def ppo_checkpoint(tmp_path_factory, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from memrl.train.algorithms.ppo import PPOConfig
    from memrl.train.ppo import PPOTrainer, RowRollouts

    def make(out):
        return PPOTrainer(AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir),
                          RowRollouts([{"prompt": "hello"}], lambda completions, **kw: [0.0] * len(completions)),
                          PPOConfig(total_iterations=1, batch_size=2, minibatch_size=2, max_new_tokens=4, seed=0,
                                    critic="shared"), out)

    trainer = make(tmp_path_factory.mktemp("ppo"))
    return trainer.save_checkpoint(), make


@pytest.mark.parametrize("rel", ["policy/model.safetensors", "critic.safetensors", "optimizer.pt", "trainer_state.json"])
def test_truncated_checkpoint_file_is_named(ppo_checkpoint, rel, tmp_path):
    from memrl.train.ppo import CheckpointError

    good, make = ppo_checkpoint
    ckpt = tmp_path / good.name
    shutil.copytree(good, ckpt)
    make(tmp_path / "ok").load_checkpoint(ckpt)  # intact: loads
    f = ckpt / rel
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])  # cut in half, as a crash during a copy would
    named = str(f) if rel != "policy/model.safetensors" else str(ckpt / "policy")
    with pytest.raises(CheckpointError) as e:
        make(tmp_path / "bad").load_checkpoint(ckpt)
    assert named in str(e.value), str(e.value)


# ---- Ray: a worker process dies -------------------------------------------------------------------------------
def _ship_this_module_to_ray_workers() -> None:
    """Ray workers cannot import test modules (tests/ is not on their path): pickle these functions by value."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _conversation_digest(task: dict) -> str:
    """Synthesize conversation `i` and hash its JSONL line; the first attempt at `crash_at` kills its worker."""
    import hashlib

    from memrl.data_synth.config import SynthConfig
    from memrl.data_synth.synth import conversation_line, synthesize_conversation

    if task["i"] == task.get("crash_at"):
        marker = Path(task["marker"])
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(1)  # the worker process dies: no exception, no cleanup
    cfg = SynthConfig(seed=7, sessions_per_conversation=[3, 3], turns_per_session=[6, 6])
    return hashlib.sha256(conversation_line(synthesize_conversation(cfg, task["i"])).encode()).hexdigest()


@pytest.mark.slow
def test_ray_worker_crash_is_retried_with_identical_results(ray_executor, tmp_path):
    from memrl.dist import make_executor

    _ship_this_module_to_ray_workers()
    marker = tmp_path / "crashed.pid"
    tasks = [{"i": i, "crash_at": 3, "marker": str(marker)} for i in range(8)]
    local = make_executor("local").map(_conversation_digest, [{"i": i} for i in range(8)])
    remote = ray_executor.map(_conversation_digest, tasks)
    assert marker.exists() and int(marker.read_text()) != os.getpid()  # a Ray worker really died on shard 3
    assert remote == local  # retried, in order, nothing lost or duplicated


def _fails_on_two(i: int) -> int:
    if i == 2:
        raise ValueError("bad shard")
    return i


@pytest.mark.slow
def test_ray_shard_that_keeps_failing_is_named(ray_executor):
    from memrl.dist import ShardError

    _ship_this_module_to_ray_workers()
    with pytest.raises(ShardError, match=r"(?s)shard 2 .*bad shard"):
        ray_executor.map(_fails_on_two, list(range(4)))


# ---- fuzz: loaders --------------------------------------------------------------------------------------------
_FUZZ_DIR = Path(tempfile.mkdtemp(prefix="memrl-ft-fuzz-"))
# No shrinking: the inputs are already small, and shrinking a failure here took minutes of suite time.
FUZZ = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow],
            "phases": [Phase.explicit, Phase.reuse, Phase.generate]}


def _loaders():
    from memrl.data.loaders import load_locomo, load_longmemeval, load_timedial

    return {
        "locomo_quirks.json": load_locomo,
        "longmemeval_small.json": load_longmemeval,
        "timedial_small.json": load_timedial,
        "timedial_questions_small.json": lambda p: load_timedial(
            p, contexts=FIXTURES / "timedial_contexts_small.json", time_ranges=FIXTURES / "timedial_time_ranges_small.json"),
    }


# Text-level damage (test_loaders.py fuzzes the parsed structure; this fuzzes the bytes): truncation at any
# offset, a deleted span, inserted junk, a replaced character. Any outcome but DataError is a bug.
_edits = st.one_of(
    st.tuples(st.just("cut"), st.floats(0, 1)),
    st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 40)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.text(max_size=12)),
    st.tuples(st.just("replace"), st.floats(0, 1), st.sampled_from(list('{}[]",:0a\\\x00é\n'))),
)


def _damage(text: str, edits) -> str:
    for edit in edits:
        pos = int(edit[1] * len(text))
        if edit[0] == "cut":
            text = text[:pos]
        elif edit[0] == "delete":
            text = text[:pos] + text[pos + edit[2]:]
        elif edit[0] == "insert":
            text = text[:pos] + edit[2] + text[pos:]
        else:
            text = text[:pos] + edit[2] + text[pos + 1:]
    return text


@pytest.mark.parametrize("fixture", ["locomo_quirks.json", "longmemeval_small.json", "timedial_small.json",
                                     "timedial_questions_small.json"])
@settings(max_examples=60, **FUZZ)
@given(edits=st.lists(_edits, min_size=1, max_size=3))
def test_fuzz_damaged_benchmark_files_raise_only_data_error(fixture, edits):
    path = _FUZZ_DIR / f"damaged-{fixture}"
    path.write_text(_damage((FIXTURES / fixture).read_text(encoding="utf-8"), edits), encoding="utf-8")
    try:
        _loaders()[fixture](path)
    except DataError as e:
        assert str(path) in str(e), str(e)  # the error names the file


_JSONL = None


@settings(max_examples=60, **FUZZ)
@given(edits=st.lists(_edits, min_size=1, max_size=3))
def test_fuzz_damaged_jsonl_raises_only_data_error(edits):
    global _JSONL
    if _JSONL is None:
        src = _FUZZ_DIR / "clean.jsonl"
        write_conversations(src, _synthetic(2))
        _JSONL = src.read_text(encoding="utf-8")
    path = _FUZZ_DIR / "damaged.jsonl"
    path.write_text(_damage(_JSONL, edits), encoding="utf-8")
    try:
        read_conversations(path)
    except DataError as e:
        assert str(path) in str(e), str(e)


# ---- fuzz: the config parser ----------------------------------------------------------------------------------
def _schemas():
    from memrl.data_synth.config import SynthConfig
    from memrl.eval import EvalConfig
    from memrl.train.config import TrainConfig

    return {"synth": SynthConfig, "eval": EvalConfig, "train": TrainConfig}


@functools.cache
def _keys(schema_cls) -> list[str]:
    from omegaconf import OmegaConf

    def walk(node, prefix):
        for k in node:
            full = f"{prefix}{k}"
            yield full
            child = node._get_node(k)
            if OmegaConf.is_dict(child):
                yield from walk(child, f"{full}.")

    return list(walk(OmegaConf.structured(schema_cls), ""))


def _parser_leak() -> str | None:
    """A known-bad override that must give ConfigError; anything else means the parser still leaks errors."""
    from memrl.data_synth.config import SynthConfig

    try:
        load_config(SynthConfig, None, ["out='"])
    except ConfigError:
        return None
    except Exception as e:  # noqa: BLE001
        return type(e).__name__
    return None


# Until memrl/config.py turns yaml/omegaconf errors into ConfigError (a patch is in the issue-8 report), these
# fuzz tests find those leaks; they are expected failures while the probe above still sees one, strict after.
_LEAK = _parser_leak()
parser_leaks = pytest.mark.xfail(_LEAK is not None, strict=False,
                                 reason=f"memrl/config.py lets {_LEAK} escape for a malformed value (known bug)")

_values = st.one_of(
    st.text(max_size=12), st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=True).map(str),
    st.sampled_from(["true", "null", "[]", "[1,2]", "{}", "{a: 1}", "[", "${oops}", "${x.y}", "'", "1e400", "-0", ""]),
)


@parser_leaks
@pytest.mark.parametrize("schema", ["synth", "eval", "train"])
@settings(max_examples=40, **FUZZ)
@given(data=st.data())
def test_fuzz_overrides_raise_only_config_error(schema, data):
    cls = _schemas()[schema]
    keys = _keys(cls)
    key = st.one_of(st.sampled_from(keys), st.text(max_size=10), st.sampled_from(keys).map(lambda k: k + ".x"))
    overrides = data.draw(st.lists(st.one_of(st.builds(lambda k, v: f"{k}={v}", key, _values), st.text(max_size=15)),
                                   max_size=3), label="overrides")
    try:
        load_config(cls, None, overrides)
    except ConfigError:
        pass


_yaml_docs = st.one_of(
    st.text(max_size=60),
    st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)),
                 lambda ch: st.lists(ch, max_size=3) | st.dictionaries(st.text(max_size=8), ch, max_size=3),
                 max_leaves=10).map(lambda obj: json.dumps(obj)),  # JSON is YAML
)


@parser_leaks
@pytest.mark.parametrize("schema", ["synth", "eval", "train"])
@settings(max_examples=30, **FUZZ)
@given(data=st.data())
def test_fuzz_yaml_files_raise_only_config_error(schema, data):
    cls = _schemas()[schema]
    keys = _keys(cls)
    doc = data.draw(st.one_of(
        _yaml_docs,
        st.dictionaries(st.sampled_from(keys), _values, min_size=1, max_size=3).map(
            lambda d: "\n".join(f"{k}: {v}" for k, v in d.items())),  # real keys, arbitrary values, dotted as written
    ), label="yaml")
    path = _FUZZ_DIR / f"{schema}.yaml"
    path.write_text(doc, encoding="utf-8")
    try:
        load_config(cls, path, [])
    except ConfigError:
        pass

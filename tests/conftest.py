"""Shared pytest fixtures. Sections are owned by different parts of the suite; keep them delimited."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CONV26 = os.path.join(ROOT, "data", "locomo", "conv-26.json")  # shipped with attribution: data/locomo/NOTICE.md


# --- Ray (started once per test session: ray.init costs ~3 s and ~0.7 GB) ---
@pytest.fixture(scope="session")
def ray_executor():
    from memrl.dist import make_executor

    ex = make_executor("ray", num_workers=2)
    yield ex
    ex.shutdown()


@pytest.fixture(scope="session")
def conv26_path():
    if not os.path.exists(CONV26):
        pytest.skip(f"{CONV26} not present (shared/ is beside the repo in CI)")
    return CONV26


# --- tiny model fixtures (backends) ---
# One tiny Llama per test session (builds in ~1 s). init_std=0.1 so that an untrained model's greedy output
# depends on the prompt (at the usual 0.02 it repeats one token whatever the prompt).
@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from memrl.train.tiny_model import build_tiny_model_dir

    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny_model") / "model", init_std=0.1)


@pytest.fixture(scope="session")
def tiny_backend(tiny_model_dir):
    """A TransformersBackend on the tiny model (CPU). Tests must not change its model's weights."""
    from memrl.policies.backends import TransformersBackend

    return TransformersBackend(tiny_model_dir, device="cpu", batch_size=4)


@pytest.fixture(scope="module")
def torch_one_thread():
    """Run a module's tiny-model work on one intra-op thread, then restore the setting.

    Measured here: a 16-token greedy batch on the tiny model took 0.3 s with 1 thread and 2.3 s with 2
    threads while other test processes loaded the 2-core machine (OpenMP threads spin and get descheduled).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
# --- end tiny model fixtures (backends) ---


# --- real model (SmolLM2-135M-Instruct; tests/test_real_model.py, tests/test_models.py) ---
# Prepared once into $MEMRL_HOME/models (default ~/.cache/memrl; `make setup` does it): ~25 s the first time,
# a marker check afterwards. Tests that need it skip, naming the reason, only when it cannot be prepared.
@pytest.fixture(scope="session")
def real_model_dir():
    from memrl.models import ModelError, prepare

    try:
        return prepare("smollm2-135m-instruct", log=lambda s: None)
    except ModelError as e:
        pytest.skip(f"the real model cannot be prepared here: {e}")
# --- end real model ---


# --- a small `memrl synth`-style directory (train / validation / test JSONL), shared by the train tests ---
@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    """A small `memrl synth`-style directory: 6 train, 1 validation, 1 test conversations."""
    from memrl.data.io import write_conversations
    from memrl.data_synth.config import SynthConfig
    from memrl.data_synth.synth import synthesize_conversation

    cfg = SynthConfig(seed=0, sessions_per_conversation=[2, 3], turns_per_session=[6, 8], questions_per_conversation=8,
                      facts_per_speaker=[3, 4], events_per_speaker=[1, 2], plans_per_speaker=[0, 1])
    convs = [synthesize_conversation(cfg, i) for i in range(8)]
    d = tmp_path_factory.mktemp("synth")
    write_conversations(d / "train.jsonl", convs[:6])
    write_conversations(d / "validation.jsonl", convs[6:7])
    write_conversations(d / "test.jsonl", convs[7:])
    return d

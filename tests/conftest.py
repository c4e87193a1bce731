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

SHARED = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
CONV26 = os.path.join(SHARED, "data", "locomo", "conv-26.json")


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

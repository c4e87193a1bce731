"""What this machine computes fast, without importing torch: the facts behind `dtype: auto`.

bfloat16 pays on CPUs that multiply it natively (AMX-BF16 tiles or AVX512-BF16): measured on such a CPU with
SmolLM2-135M, forward 2.8x, forward+backward 2.7x, generation 2.2x faster than float32 (docs/PERFORMANCE.md).
Without those instructions torch emulates bf16 and it is slower than float32.
"""

from __future__ import annotations

import functools

# bfloat16 pays where the matmuls dominate; below this a model runs as fast in float32, and exactly.
BF16_MIN_PARAMS = 50_000_000


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_fast_bf16() -> bool:
    """True when this CPU has AMX-BF16 or AVX512-BF16."""
    return bool({"amx_bf16", "avx512_bf16"} & cpu_flags())


def dtype_rule(setting: str, device: str = "auto") -> str:
    """In words, what `dtype: <setting>` loads on this machine (recorded in results.json and run summaries)."""
    if setting != "auto":
        return f"{setting} (set)"
    if device.startswith("cuda"):
        return "auto: bfloat16 on CUDA with bf16 support, for models >= 50M parameters; float32 below"
    if cpu_fast_bf16():
        return "auto: bfloat16 on this CPU (native AMX-BF16 / AVX512-BF16) for models >= 50M parameters; float32 below"
    return "auto: float32 (this CPU has no native bf16)"

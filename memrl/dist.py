"""One executor for embarrassingly parallel work: local (default) or Ray.

Synthesis, leave-one-out mining, evaluation and PPO rollouts all reduce to "apply a pure, picklable function
to a list of shards and get the results back in order". That is the whole interface:

    ex = make_executor("ray", num_workers=2)      # or "local"
    results = ex.map(fn, shards)                    # same order as `shards`, same values as local

Ray specifics (measured here): `ray.init` costs ~3 s and ~0.7 GB, so it is started once per
process and reused; there is no local mode any more; light tasks ask for fractional CPUs so that a 2-CPU
machine does not deadlock. A shard whose worker dies is retried (`max_retries`); a shard that raises a
Python exception is retried too (`retry_exceptions`) and, if it keeps failing, its exception is re-raised
here naming the shard index. Results are returned only once every shard succeeded, so nothing is lost or
duplicated: callers that persist per-shard output write it atomically and skip finished shards on rerun.

The boundary for user errors: a `MemrlError` (bad input, explained by its message) raised inside a shard comes
out of `map` as itself, local or Ray, never wrapped in `ShardError`, so the CLI prints its one line. On Ray it
travels back as a value (`_Carried`), which also keeps Ray from retrying a shard whose input is wrong. Any other
exception is a bug or an environment failure and stays a `ShardError` with its traceback chained.
"""

from __future__ import annotations

import os
import pickle
from typing import Any, Callable, Sequence

from tqdm.auto import tqdm

from memrl.errors import MemrlError


class ShardError(RuntimeError):
    """A shard failed after its retries."""


class _Carried:
    """A MemrlError raised in a Ray shard, returned as a value so that Ray does not retry it."""

    def __init__(self, error: MemrlError):
        try:
            pickle.loads(pickle.dumps(error))
        except Exception:  # noqa: BLE001 - a subclass that does not pickle: keep its message and exit code
            plain = MemrlError(str(error))
            plain.exit_code = getattr(error, "exit_code", MemrlError.exit_code)
            error = plain
        self.error = error


def _carrying_user_errors(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """The shard function with a MemrlError returned as a `_Carried` value (Ray pickles the closure)."""

    def run(item: Any) -> Any:
        try:
            return fn(item)
        except MemrlError as e:
            return _Carried(e)

    run.__name__ = getattr(fn, "__name__", "shard")
    run.__qualname__ = run.__name__
    return run


class LocalExecutor:
    kind = "local"

    def __init__(self, num_workers: int = 1, progress: bool = False, desc: str = "shards"):
        self.num_workers = 1
        self.progress = progress
        self.desc = desc

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], desc: str | None = None) -> list[Any]:
        out = []
        for i, item in enumerate(tqdm(items, desc=desc or self.desc, disable=not self.progress)):
            try:
                out.append(fn(item))
            except MemrlError:
                raise  # the user's input is at fault: its message is complete (the CLI prints one line)
            except Exception as e:
                raise ShardError(f"shard {i} failed: {type(e).__name__}: {e}") from e
        return out

    def shutdown(self) -> None:
        pass


class RayExecutor:
    kind = "ray"

    def __init__(self, num_workers: int = 2, address: str | None = None, num_cpus_per_task: float = 1.0,
                 max_retries: int = 3, progress: bool = False, desc: str = "shards"):
        import ray

        self.ray = ray
        self.num_workers = max(1, int(num_workers))
        self.progress = progress
        self.desc = desc
        self.max_retries = max_retries
        self.num_cpus_per_task = num_cpus_per_task
        if not ray.is_initialized():
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False,
                                          ignore_reinit_error=True)
            if address in (None, "", "local"):
                kwargs["num_cpus"] = max(self.num_workers, os.cpu_count() or 1)
            else:
                kwargs["address"] = address
            ray.init(**kwargs)

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], desc: str | None = None) -> list[Any]:
        ray = self.ray
        remote = ray.remote(num_cpus=self.num_cpus_per_task, max_retries=self.max_retries,
                            retry_exceptions=True)(_carrying_user_errors(fn))
        # Keep at most `num_workers` shards in flight: bounded memory, and one slow shard cannot starve others.
        pending: dict[Any, int] = {}
        results: list[Any] = [None] * len(items)
        next_i = 0
        bar = tqdm(total=len(items), desc=desc or self.desc, disable=not self.progress)
        try:
            while next_i < len(items) or pending:
                while next_i < len(items) and len(pending) < self.num_workers:
                    pending[remote.remote(items[next_i])] = next_i
                    next_i += 1
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    i = pending.pop(ref)
                    try:
                        results[i] = ray.get(ref)
                    except Exception as e:
                        cause = getattr(e, "cause", None)
                        if isinstance(cause, MemrlError):
                            raise cause from None
                        raise ShardError(f"shard {i} failed after {self.max_retries} retries: {e}") from e
                    if isinstance(results[i], _Carried):
                        raise results[i].error
                    bar.update(1)
        finally:
            bar.close()
            for ref in pending:
                ray.cancel(ref, force=True)
        return results

    def shutdown(self) -> None:
        if self.ray.is_initialized():
            self.ray.shutdown()


def make_executor(kind: str = "local", num_workers: int = 1, address: str | None = None,
                  progress: bool = False, **kwargs) -> LocalExecutor | RayExecutor:
    if kind == "local":
        return LocalExecutor(num_workers, progress=progress)
    if kind == "ray":
        return RayExecutor(num_workers=num_workers, address=address, progress=progress, **kwargs)
    raise ValueError(f"executor must be 'local' or 'ray', got {kind!r}")


def shard(items: Sequence[Any], num_shards: int) -> list[list[Any]]:
    """Split into `num_shards` contiguous, order-preserving chunks (some may be empty)."""
    n = max(1, num_shards)
    k, r = divmod(len(items), n)
    out, start = [], 0
    for i in range(n):
        end = start + k + (1 if i < r else 0)
        out.append(list(items[start:end]))
        start = end
    return out

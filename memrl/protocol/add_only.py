"""The bank writer that needs no policy: ADD every candidate fact as said (no updates, no deletes).

It is the `add_only` baseline (Mem0 v3's single-pass ADD-only extraction; `memrl.policies.baselines` lists it
with the other managers) and the answer environment's default bank writer: `AnswerEnvConfig.manager` is
"add_only" by default, so `gymnasium.make("memrl/Answer-v0")` builds its banks without a manager passed in.
It lives in the protocol layer, beside the `Manager` protocol it implements, because it decides nothing: the
environments may use it without looking up a policy.
"""

from __future__ import annotations

from collections.abc import Sequence

from memrl.protocol.parsing import ops_json
from memrl.protocol.steps import ManagerStep


class AddOnlyManager:
    name = "add_only"
    kind = "manager"

    def decide(self, steps: Sequence[ManagerStep]) -> list[str]:
        return [ops_json([{"op": "ADD", "text": f.text} for f in s.facts]) for s in steps]

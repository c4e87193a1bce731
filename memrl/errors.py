"""The one base class for errors whose message is complete for a user.

`memrl.cli` prints any `MemrlError` as one line (`error: ...`) and exits non-zero instead of showing a
traceback: the message names the file, key or setting at fault and what to do. Subclasses live next to the
code that raises them (ConfigError, DataError, CheckpointError, ModelDirError, RunDirError, ...).
"""

from __future__ import annotations


class MemrlError(Exception):
    """A failure caused by the user's input or environment, explained fully by its message."""

    exit_code = 1  # input errors (config, data) use 2, like argparse

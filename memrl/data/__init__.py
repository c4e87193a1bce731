"""Common schema, IO and benchmark loaders."""

from memrl.data.io import DataError, read_conversations, write_conversations
from memrl.data.schema import ABSTAIN_ANSWER, Conversation, GoldOp, Question, SchemaError, Session, Turn

__all__ = [
    "ABSTAIN_ANSWER", "Conversation", "DataError", "GoldOp", "Question", "SchemaError", "Session", "Turn",
    "read_conversations", "write_conversations",
]

"""memrl: train LLM memory agents (a memory manager and an answer agent) with PPO and GRPO."""

__version__ = "0.1.0"

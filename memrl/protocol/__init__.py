"""The text contract between environments, policies and rewards (imports none of them)."""

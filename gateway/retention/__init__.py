"""gateway/retention."""

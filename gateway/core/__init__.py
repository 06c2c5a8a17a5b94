"""gateway/core."""

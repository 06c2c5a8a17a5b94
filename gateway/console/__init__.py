"""gateway/console."""

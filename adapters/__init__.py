"""External-protocol adapters; import nothing from the rest of the project."""

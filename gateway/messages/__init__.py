"""The send pipeline: outbound contacts claimed, prepared, sent once, tracked and costed."""

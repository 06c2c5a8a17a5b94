"""Test support: real servers for outside protocols, database and app fixtures."""

"""Tasks for operators and partners; a call task closes only with a verified call."""

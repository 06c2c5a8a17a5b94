"""Costs and savings: the ledger's figures, the estimate, measured deflection."""

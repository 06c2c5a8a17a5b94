"""Allocation of open call tasks to service partners: eligibility, capacities, optimal plan.

Import from the modules (`policy`, `model`, `solve`, `service`, …): settings may load
`policy` on its own, so this package must not pull in the rest at import time.
"""

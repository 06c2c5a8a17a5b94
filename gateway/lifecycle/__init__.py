"""Customer lifecycle: status moves, call cadence and behaviour detectors, driven by `as_of`.

Import from the modules (`policy`, `transitions`, `cadence`, `detectors`): settings load
`policy` on their own, so this package must not pull in the rest at import time.
"""

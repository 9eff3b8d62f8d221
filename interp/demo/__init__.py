"""`interp demo`: every analysis on one model, composed into one HTML report.

`run_demo` caches the residual stream and runs one section per analysis family (one module
each here), with sizes scaled to the model (`Sizes`).
"""

from interp.demo.run import LARGE_PARAMS, Sizes, run_demo

__all__ = ["LARGE_PARAMS", "Sizes", "run_demo"]

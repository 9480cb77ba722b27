"""Model evaluation: metrics, decision thresholds and the HTML model report, as pure functions on numpy arrays.

No MLflow and no KFP here: the `evaluate` component calls these functions and logs what they return, so every
number can be checked by hand in a unit test.

Import from the submodules (`metrics`, `thresholds`, `report`): the package imports nothing itself, so the
registered model, which needs only `thresholds`, never pulls in matplotlib.
"""

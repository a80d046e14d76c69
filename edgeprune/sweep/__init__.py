"""``edgeprune sweep``: search the compression choices for the Pareto front of
accuracy against a device's costs, under its budgets (optuna; imported only in
this package). :func:`edgeprune.sweep.driver.sweep` is the library entry point,
:func:`edgeprune.sweep.export.export_trial` turns one trial into a run folder.
Importing this package imports nothing heavy (the recipe reads ``[sweep]``
through :mod:`edgeprune.sweep.space`)."""

"""edgeprune sweep: search compression choices with Optuna under a device's budgets."""

"""Tree models (scikit-learn decision trees and forests) on the same budgets.

One package owns them: reading and training (:mod:`.model`), the pruning
algorithms, the C export and its compiled sizes. It is the only code that
imports emlearn, and it knows nothing of Keras or tfmot.
"""

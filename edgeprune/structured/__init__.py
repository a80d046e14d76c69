"""Structured pruning: remove whole neurons, filters and channels from tf_keras models.

``graph`` finds the channels that must be cut together, ``surgery`` rebuilds
the smaller dense model, ``importance`` scores channels. Nothing here uses
tfmot; the unstructured tfmot stage can follow on the rebuilt model.
"""

"""Model monitoring: drift, decision mix, matured performance and online/offline skew.

The monitor reads decisions in the audit log's format (the live service's log or a
replay of generated transactions) and the fraud label events known at each day. It
compares every model feature and the score with the reference profile stored with
the model, measures performance only over transactions whose label window has
closed, and raises alerts against the thresholds of the ``monitor`` section of
params.yaml.
"""

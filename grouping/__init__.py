"""taskgrouper's science: problem model, selection solvers, affinity estimators, training, data, evaluation.

A pure library: it never imports ``service`` or ``worker``.
"""

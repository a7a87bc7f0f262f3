"""Studies: which candidate networks to train (trials), and the selection problem their results form.

Pure science, no persistence: :mod:`grouping.studies.strategy` says which networks a strategy wants
given the results so far; :mod:`grouping.studies.problem` turns measured networks into the explicit
problem (with Higher-Order-Approximation fill where the strategy allows).
"""

from grouping.studies.problem import Measurement, NetworkKey, study_problem
from grouping.studies.strategy import (
    ADAPTIVE,
    MAX_TASKS,
    STRATEGIES,
    StudyPlan,
    initial_networks,
    next_networks,
)

__all__ = [
    "ADAPTIVE",
    "MAX_TASKS",
    "STRATEGIES",
    "Measurement",
    "NetworkKey",
    "StudyPlan",
    "initial_networks",
    "next_networks",
    "study_problem",
]

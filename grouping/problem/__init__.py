"""The typed, validated task-grouping problem (issue 2) and its solution.

``parse_problem`` reads the explicit form (candidate networks with measured losses or scores) or the
affinity form (a pairwise affinity matrix; every subset of tasks is an implicit network).
"""

from grouping.problem.affinity import AffinityMatrix, AffinityProblem
from grouping.problem.explicit import SIZE_COSTS, CandidateNetwork, ExplicitProblem
from grouping.problem.parse import Problem, parse_problem
from grouping.problem.solution import ChosenNetwork, Solution

__all__ = [
    "SIZE_COSTS",
    "AffinityMatrix",
    "AffinityProblem",
    "CandidateNetwork",
    "ChosenNetwork",
    "ExplicitProblem",
    "Problem",
    "Solution",
    "parse_problem",
]

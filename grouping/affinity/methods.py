"""The affinity methods one training run can measure (see the package docstring)."""

AFFINITY_METHODS: tuple[str, ...] = ("tag", "tag_first_order", "grad_cosine")

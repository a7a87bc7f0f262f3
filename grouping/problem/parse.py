"""Reading a problem from its JSON form, with errors that name the offending field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from grouping.errors import InputError
from grouping.problem.affinity import AffinityProblem
from grouping.problem.explicit import ExplicitProblem

Problem = ExplicitProblem | AffinityProblem

_FORMS: dict[str, type[BaseModel]] = {
    "min_loss": ExplicitProblem,
    "max_score": ExplicitProblem,
    "max_affinity": AffinityProblem,
}


def _field_path(loc: tuple[Any, ...]) -> str:
    """``("networks", 2, "cost")`` -> ``"networks[2].cost"``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "problem"


def validate_model(model: type[BaseModel], data: Mapping[str, Any], prefix: tuple[Any, ...] = ()) -> Any:
    """``model.model_validate(data)``, turning a pydantic error into :class:`InputError` for its field."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = prefix + tuple(err["loc"])
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, InputError):
            raise InputError(_field_path(loc + (cause.field,)), cause.reason, **cause.details) from None
        raise InputError(_field_path(loc), err["msg"]) from None


def parse_problem(data: Mapping[str, Any]) -> Problem:
    """Validate the explicit or affinity JSON form.

    The form is chosen by ``objective`` (``min_loss``/``max_score``: explicit, ``max_affinity``:
    affinity); unknown top-level keys such as ``metadata`` are ignored, known ones validated strictly.
    """
    if not isinstance(data, Mapping):
        raise InputError("problem", "must be a JSON object")
    objective = data.get("objective")
    if objective is None:
        objective = "max_affinity" if "affinity" in data else "min_loss"
    if not isinstance(objective, str) or objective not in _FORMS:
        raise InputError("objective", f"must be one of {sorted(_FORMS)}, got {objective!r}")
    model = _FORMS[objective]
    known = {k: v for k, v in data.items() if k in model.model_fields}
    known["objective"] = objective
    return validate_model(model, known)

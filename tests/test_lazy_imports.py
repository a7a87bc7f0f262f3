"""The API process and ``taskgrouper solve`` do not load torch or scikit-learn (an API worker stays
small and starts fast); the packages' lazy exports still give every name they list."""

import subprocess
import sys

import pytest

import grouping.affinity
import grouping.data
import grouping.training

HEAVY = ("torch", "sklearn")


@pytest.mark.parametrize("statement", ["import service.app", "import grouping.cli.solve"])
def test_light_entry_points_do_not_load_torch_or_sklearn(statement):
    probe = f"import sys; {statement}; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.parametrize("package", [grouping.affinity, grouping.data, grouping.training])
def test_lazy_exports_resolve_every_listed_name(package):
    for name in package.__all__:
        assert getattr(package, name) is not None
        assert name in dir(package)
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        package.missing  # noqa: B018

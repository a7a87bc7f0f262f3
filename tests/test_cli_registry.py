"""The console script's command table matches what each module registers."""

import argparse
import importlib

import pytest

from service.cli import COMMANDS, build_parser, main


def _registered_by(module: str) -> set[str]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    importlib.import_module(module).register(sub)
    return set(sub.choices)


@pytest.mark.parametrize("module", sorted(set(COMMANDS.values())))
def test_each_module_registers_exactly_the_commands_mapped_to_it(module):
    assert _registered_by(module) == {name for name, owner in COMMANDS.items() if owner == module}


def test_a_command_parses_with_only_its_own_module_and_unknown_commands_list_all(capsys):
    args = build_parser("solve").parse_args(["solve", "p.json", "--budget", "2"])
    assert args.command == "solve" and args.budget == 2.0
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    assert "evaluate-scores" in capsys.readouterr().err  # argparse lists every choice

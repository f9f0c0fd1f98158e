"""The README's two commands stay true: CI runs the test command verbatim, and the run command names real things."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands():
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text())[:2]


def test_ci_runs_the_readme_test_command():
    run_cmd, test_cmd = _commands()
    assert "pytest" in test_cmd and test_cmd in (ROOT / ".ci" / "run").read_text()


def test_readme_run_command_uses_existing_entry_points():
    from scalequest.cli import build_parser

    run_cmd, _ = _commands()
    assert run_cmd.startswith("bash scripts/setup.sh") and (ROOT / "scripts" / "setup.sh").is_file()
    for part in run_cmd.split("&&")[1:]:
        argv = part.split()
        assert argv[0] == ".venv/bin/scalequest"
        build_parser().parse_args(argv[1:])  # exits on an unknown command or flag

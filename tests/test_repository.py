"""The README's fresh-machine commands and CI stay in step."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    lines = (ROOT / "README.md").read_text().splitlines()
    start = lines.index("```bash") + 1
    return lines[start:lines.index("```", start)]


def test_readme_starts_with_demo_and_test_commands():
    demo, tests = readme_commands()
    assert demo.endswith("ltv demo --out ltv-demo")
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert readme_commands()[1] in ci.splitlines()


def test_changelog_has_unreleased_section():
    assert "## [Unreleased]" in (ROOT / "CHANGELOG.md").read_text()


def test_ci_installs_what_label_reports_needs():
    from ltvcli.reports.engine import INSTALL
    no_deps = INSTALL.split(" && ")[1]
    assert no_deps.startswith("pip install --no-deps medspacy")
    assert no_deps in readme_commands()[1]

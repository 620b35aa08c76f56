"""The release notes come from the CHANGELOG section of the tagged version."""

from click.testing import CliRunner

from mlcicd.cli import mlci_gen
from mlcicd.gen.changelog import section

TEXT = """# Changelog

## [Unreleased]

### Added
- next thing

## [1.2.3] - 2026-12-01

### Fixed
- a bug

## [1.2.2] - 2026-11-01
- older

[1.2.3]: https://example.com/compare/v1.2.2...v1.2.3
"""


def test_the_section_of_a_version_up_to_the_next():
    assert section(TEXT, "1.2.3") == "### Fixed\n- a bug\n"
    assert section(TEXT, "v1.2.3") == section(TEXT, "1.2.3")  # a GitHub tag
    assert section(TEXT, "1.2.2") == "- older\n"  # link references are no entry


def test_a_missing_section_names_the_fix(tmp_path):
    (tmp_path / "CHANGELOG.md").write_text(TEXT)
    result = CliRunner().invoke(mlci_gen, ["changelog", "9.9.9", "--file", str(tmp_path / "CHANGELOG.md")])
    assert result.exit_code == 2 and "## [9.9.9]" in result.output and "Unreleased" in result.output
    result = CliRunner().invoke(mlci_gen, ["changelog", "1.2.3", "--file", str(tmp_path / "CHANGELOG.md")])
    assert result.exit_code == 0 and result.output == "### Fixed\n- a bug\n"

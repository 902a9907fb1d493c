"""The README's Python snippet runs as written."""

import pathlib
import runpy

SNIPPET = pathlib.Path(__file__).resolve().parent.parent / "readme_snippet.py"


def test_readme_snippet_runs(capsys):
    assert len(SNIPPET.read_text().splitlines()) <= 30
    runpy.run_path(str(SNIPPET), run_name="__main__")
    assert capsys.readouterr().out.strip() == "replay rejected"

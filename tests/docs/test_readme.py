"""The README's Python example runs as written."""

import re
import runpy
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_example_runs(tmp_path: Path, capsys) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    for index, block in enumerate(blocks):
        script = tmp_path / f"readme_{index}.py"  # nnsight reads a trace's source back from disk
        script.write_text(block)
        runpy.run_path(str(script), run_name="__main__")
    assert "torch.Size([2, 1, 2, 8])" in capsys.readouterr().out

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
    answers, shape = capsys.readouterr().out.splitlines()[-2:]
    assert shape == "torch.Size([4, 1, 2, 16])"  # the LLaVA organism: 8 heads of 16
    assert answers.count("'yes'") + answers.count("'no'") == 8  # 4 answers, 4 truths

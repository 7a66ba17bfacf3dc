"""Reading the report's Markdown tables back: {table title: [row as {column: text}]}."""

import re
from pathlib import Path

_SPLIT = re.compile(r"(?<!\\)\|")


def _cells(line: str) -> list[str]:
    return [c.strip().replace("\\|", "|") for c in _SPLIT.split(line.strip())[1:-1]]


def tables(path: Path) -> dict[str, list[dict[str, str]]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    out: dict[str, list[dict[str, str]]] = {}
    title = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("**") and line.endswith("**"):
            title = line.strip("*")
        if line.startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            header = _cells(line)
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(dict(zip(header, _cells(lines[i]), strict=True)))
                i += 1
            out[title] = rows
            continue
        i += 1
    return out

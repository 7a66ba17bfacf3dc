"""Rendering a `Document`: one self-contained HTML page (inline CSS, figures as base64 PNG, no
script and no external resource), Markdown beside it, and each table as CSV."""

import base64
import csv
import html
import io

from ._doc import Document, Figure, Section, Table

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;
max-width:1180px;margin:2em auto;padding:0 1.2em}
h1{font-size:1.7em;margin-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #ddd;
padding-bottom:.2em}nav ol{columns:2;font-size:.92em}
table{border-collapse:collapse;margin:1em 0;font-size:.82em;display:block;overflow-x:auto}
caption{text-align:left;font-weight:600;padding:.3em 0}
th,td{border:1px solid #d8d8d8;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f3f4f6}tbody tr:nth-child(even){background:#fafafa}
td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
figure{margin:1.2em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption,.note{color:#555;font-size:.88em}.absent{background:#fff4e5;border-left:4px solid
#f0a020;padding:.6em .9em}.facts td:first-child{font-weight:600}
"""


def _cell(text: str) -> str:
    numeric = any(ch.isdigit() for ch in text) and len(text) < 40
    return (
        f'<td class="num">{html.escape(text)}</td>' if numeric else f"<td>{html.escape(text)}</td>"
    )


def table_html(table: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in table.rows)
    note = f'<p class="note">{html.escape(table.note)}</p>' if table.note else ""
    return (f'<table id="table-{table.key}"><caption>{html.escape(table.title)}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}")  # fmt: skip


def figure_html(figure: Figure) -> str:
    data = base64.b64encode(figure.png).decode("ascii")
    return (f'<figure id="figure-{figure.key}"><img src="data:image/png;base64,{data}" '
            f'alt="{html.escape(figure.alt)}"><figcaption>{html.escape(figure.title)}'
            "</figcaption></figure>")  # fmt: skip


def section_html(section: Section) -> str:
    parts = [f'<section id="{section.key}"><h2>{html.escape(section.title)}</h2>']
    if section.intro:
        parts.append(f"<p>{html.escape(section.intro)}</p>")
    if section.absent:
        parts.append(f'<p class="absent">Absent: {html.escape(section.absent)}</p>')
    parts += [figure_html(f) for f in section.figures]
    parts += [table_html(t) for t in section.tables]
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in section.notes]
    return "".join(parts) + "</section>"


def to_html(doc: Document) -> str:
    """The whole report as one HTML page that needs nothing else (no network, no script)."""
    facts = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
                    for k, v in doc.facts)  # fmt: skip
    toc = "".join(f'<li><a href="#{s.key}">{html.escape(s.title)}</a>'
                  f"{' (absent)' if s.absent else ''}</li>" for s in doc.sections)  # fmt: skip
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>{html.escape(doc.title)}</title>'
        f"<style>{CSS}</style></head><body><h1>{html.escape(doc.title)}</h1>"
        f'<table class="facts" id="table-facts"><tbody>{facts}</tbody></table>'
        f"<nav><ol>{toc}</ol></nav>"
        + "".join(section_html(s) for s in doc.sections)
        + "</body></html>\n"
    )


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table_markdown(table: Table) -> str:
    lines = [f"**{table.title}**", "", "| " + " | ".join(map(_md_cell, table.columns)) + " |",
             "|" + "---|" * len(table.columns)]  # fmt: skip
    lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in table.rows]
    if table.note:
        lines += ["", f"_{table.note}_"]
    return "\n".join(lines)


def to_markdown(doc: Document, figure_dir: str) -> str:
    """The report as Markdown; figures are linked from `figure_dir` (relative to the file)."""
    parts = [f"# {doc.title}", ""]
    parts += [f"- **{k}**: {v}" for k, v in doc.facts]
    for section in doc.sections:
        parts += ["", f"## {section.title}", ""]
        if section.intro:
            parts += [section.intro, ""]
        if section.absent:
            parts += [f"> **Absent:** {section.absent}", ""]
        for figure in section.figures:
            parts += [f"![{figure.alt}]({figure_dir}/{figure.key}.png)", "",
                      f"_{figure.title}_", ""]  # fmt: skip
        for table in section.tables:
            parts += [table_markdown(table), ""]
        parts += [f"_{n}_\n" for n in section.notes]
    return "\n".join(parts).rstrip() + "\n"


def to_csv(table: Table) -> str:
    """The table's raw values (`Table.data`), or its display text when it has none."""
    buffer = io.StringIO()
    if table.data:
        columns = list(dict.fromkeys(k for row in table.data for k in row))
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(
            [{k: "" if v is None else v for k, v in row.items()} for row in table.data]
        )
    else:
        writer_ = csv.writer(buffer, lineterminator="\n")
        writer_.writerow(table.columns)
        writer_.writerows(table.rows)
    return buffer.getvalue()

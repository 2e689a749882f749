"""What people see on a step's output: numbers, URLs and small Markdown tables."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from s3repo_core._report import human_size

__all__ = ["MAX_TABLE_ROWS", "human_size", "markdown_table"]

#: Rows shown in a table; more are counted in a last line.
MAX_TABLE_ROWS = 50


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table of at most MAX_TABLE_ROWS rows (the rest are counted)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    hidden = 0
    for number, row in enumerate(rows):
        if number < MAX_TABLE_ROWS:
            lines.append("| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |")
        else:
            hidden += 1
    if hidden:
        lines.append(f"\n… and {hidden} more")
    return "\n".join(lines)

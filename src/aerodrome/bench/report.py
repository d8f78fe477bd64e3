"""The run's table: each figure beside its floor, the ratio, the target, and published anchors from elsewhere."""

from __future__ import annotations

from rich.table import Table

from aerodrome.bench.figures import Figure


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def table(figures: list[Figure], title: str, anchors: bool = True) -> Table:
    view = Table(title=title, title_justify="left")
    for column in ("figure", "p50", "p90", "floor (same run)", "floor p50", "ratio", "target", ""):
        view.add_column(column, justify="right" if column in ("p50", "p90", "floor p50", "ratio") else "left")
    if anchors:
        view.add_column("published, other hardware")
    for figure in figures:
        met = figure.target.met(figure) if figure.target else None
        row = [
            f"{figure.group}: {figure.name}",
            f"{_number(figure.p50)} {figure.unit}",
            _number(figure.p90),
            figure.floor_name or "-",
            _number(figure.floor_p50),
            f"{figure.ratio:.2f}x" if figure.ratio is not None else "-",
            figure.target.describe(figure.unit) if figure.target else "-",
            {True: "met", False: "missed", None: ""}[met],
        ]
        if anchors:
            row.append("; ".join(figure.anchors))
        view.add_row(*row)
    return view


def markdown(figures: list[Figure]) -> str:
    """The same table as Markdown, for the README."""
    lines = [
        "| figure | p50 | p90 | floor (same run) | floor p50 | ratio | target | published, other hardware |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        met = f.target.met(f) if f.target else None
        target = f"{f.target.describe(f.unit)} ({'met' if met else 'missed'})" if f.target else "-"
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else "-"
        lines.append(
            f"| {f.group}: {f.name} | {_number(f.p50)} {f.unit} | {_number(f.p90)} | {f.floor_name or '-'} | "
            f"{_number(f.floor_p50)} | {ratio} | {target} | {'; '.join(f.anchors) or '-'} |"
        )
    return "\n".join(lines) + "\n"

"""The relay benchmark's tables: markdown, printed and optionally written to a file to paste in the README.

`results` maps (scenario, clients, target) to one run's numbers: the load generator's summary plus `cpu_ms` (CPU ms
per completed request of the target's processes), `peak_rss_mb` and `rss_growth_mb`.
"""

from __future__ import annotations

Key = tuple[str, int, str]

RATIO_FIGURES = (("rps", "req/s"), ("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("ttfb_p50", "TTFB p50"),
                 ("cpu_ms", "CPU/req"), ("peak_rss_mb", "peak RSS"))


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def ratio(value: float | None, base: float | None) -> float | None:
    return None if value is None or not base else value / base


def markdown(header: list[str], rows: list[list[str]], *, text_columns: int = 3) -> str:
    """A markdown table: the first `text_columns` columns left-aligned, the numbers right-aligned."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    left = [i < text_columns for i in range(len(widths))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if l else c.rjust(w) for c, w, l in zip(cells, widths, left)) + " |"

    rule = "|" + "|".join(":" + "-" * (w + 1) if l else "-" * (w + 1) + ":" for w, l in zip(widths, left)) + "|"
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def results_table(results: dict[Key, dict]) -> str:
    """One row per (scenario, clients, target), with throughput relative to the direct upstream in the same run."""
    rows = []
    for (scenario, clients, target), r in results.items():
        direct = results.get((scenario, clients, "direct"), {})
        rows.append([scenario, str(clients), target, fmt(r["rps"]), fmt(r["p50"], 2), fmt(r["p90"], 2),
                     fmt(r["p99"], 2), fmt(r["ttfb_p50"], 2), fmt(r["cpu_ms"], 2), fmt(r["peak_rss_mb"], 0),
                     str(r["errors"]), fmt(ratio(r["rps"], direct.get("rps")), 3)])
    return markdown(["scenario", "clients", "target", "req/s", "p50 ms", "p90 ms", "p99 ms", "TTFB p50 ms",
                     "CPU ms/req", "peak RSS MB", "errors", "req/s ÷ direct"], rows)


def ratios_table(results: dict[Key, dict]) -> str:
    """Every figure of every target divided by the direct upstream's at the same scenario and clients."""
    rows = []
    for (scenario, clients, target), r in results.items():
        direct = results.get((scenario, clients, "direct"))
        if target == "direct" or direct is None:
            continue
        rows.append([scenario, str(clients), target,
                     *(fmt(ratio(r[key], direct[key]), 2) for key, _label in RATIO_FIGURES)])
    return markdown(["scenario", "clients", "target", *(label for _key, label in RATIO_FIGURES)], rows)


def held_streams_check(r: dict, streams: int, max_growth_mb: float) -> tuple[bool, str]:
    """All streams complete, none buffered whole, and the process tree grew by less than `max_growth_mb`."""
    problems = []
    if r["ok"] != streams:
        problems.append(f"{streams - r['ok']} of {streams} did not complete")
    if r["buffered"]:
        problems.append(f"{r['buffered']} arrived in one piece (buffered)")
    if r["rss_growth_mb"] >= max_growth_mb:
        problems.append(f"RSS grew {r['rss_growth_mb']:,.0f} MB (limit {max_growth_mb:,.0f})")
    return not problems, "ok" if not problems else "FAIL: " + "; ".join(problems)


def held_streams_table(results: dict[Key, dict], scenario: str, streams: int, max_growth_mb: float) -> str:
    rows = []
    for (name, clients, target), r in results.items():
        if name != scenario:
            continue
        _ok, verdict = held_streams_check(r, streams, max_growth_mb)
        rows.append([target, verdict, str(clients), str(r["ok"]), str(r["errors"]), str(r["buffered"]),
                     fmt(r["ttfb_p50"], 0), fmt(r["ttfb_p99"], 0), fmt(r["p50"], 0), fmt(r["p99"], 0),
                     fmt(r["rss_growth_mb"], 0)])
    return markdown(["target", "check", "streams", "completed", "errors", "buffered", "TTFB p50 ms", "TTFB p99 ms",
                     "duration p50 ms", "duration p99 ms", "RSS growth MB"], rows, text_columns=2)


def peer_ratio_lines(results: dict[Key, dict], scenario: str, clients: int) -> list[str]:
    """LiteLLM's throughput over each Modelgate target's, at one scenario and client count."""
    litellm = results.get((scenario, clients, "litellm"))
    lines = []
    for (name, c, target), r in results.items():
        if litellm and name == scenario and c == clients and target.startswith("modelgate"):
            lines.append(f"LiteLLM / {target} requests/s at {scenario}, {clients} clients: "
                         f"{fmt(ratio(litellm['rps'], r['rps']), 2)} ({fmt(litellm['rps'])} / {fmt(r['rps'])})")
    return lines

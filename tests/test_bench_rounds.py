"""``make bench ROUNDS=N``: each format is compared with its anchor of the same round."""

from bench import run_all
from bench.bench_exports import median_run


def _runs(seconds: list[float], rows: int, **extra: float) -> list[dict[str, float]]:
    return [
        {"rows": rows, "seconds": s, "mb": 1.0, "rss_mb": 70.0 + i, "round": i, **extra} for i, s in enumerate(seconds)
    ]


def _row(table: str, name: str) -> str:
    return next(line for line in table.splitlines() if f"| {name} |" in line)


def test_a_format_is_compared_with_the_anchor_of_its_own_round():
    # Two rows of the anchor a case: its time for as many case rows is half its time.
    anchor = _runs([10.0, 20.0, 30.0], rows=2, case_rows=2)
    csv = _runs([12.0, 40.0, 33.0], rows=2)
    report = {
        "database": "PostgreSQL",
        "results": {"anchor_read": median_run(anchor), "csv": median_run(csv)},
        "rounds": {"anchor_read": anchor, "csv": csv},
    }

    # Rounds 1.20, 2.00 and 1.10: their median, not the medians' ratio (33 / 20 = 1.65).
    assert _row(run_all.table([report]), "csv").endswith("| anchor_read | 1.20 (1.10–2.00) |")


def test_a_round_whose_export_failed_is_left_out_not_paired_with_another_round_s_anchor():
    anchor = _runs([10.0, 20.0, 30.0], rows=1, case_rows=1)
    csv = [run for run in _runs([12.0, 0.0, 33.0], rows=1) if run["round"] != 1]  # round 2 failed
    report = {"database": "SQLite", "results": {}, "rounds": {"anchor_read": anchor, "csv": csv}}

    assert run_all._ratio(report, "csv", "anchor_read") == "1.15 (1.10–1.20)"


def test_the_median_run_carries_the_highest_peak_memory_of_all_rounds():
    runs = _runs([12.0, 40.0, 33.0, 20.0], rows=1)

    middle = median_run(runs)

    assert middle["seconds"] == 20.0  # the lower of the middle two
    assert middle["rss_mb"] == 73.0  # the fourth run's, not the median run's


def test_a_single_round_gives_the_plain_ratio():
    anchor, jsonl = _runs([10.0], rows=6, case_rows=3), _runs([15.0], rows=3)
    report = {
        "database": "SQLite",
        "results": {"anchor_read": anchor[0], "jsonl": jsonl[0]},
        "rounds": {"anchor_read": anchor, "jsonl": jsonl},
    }

    assert _row(run_all.table([report]), "jsonl").endswith("| anchor_read | 1.50 |")

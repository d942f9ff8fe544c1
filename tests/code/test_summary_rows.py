"""summary.md is the one table a person reads: a model row per model, the nested estimate of the champion
choice and, when `make transfer-search` was run, the nested estimates of the search behind transfer_ridge."""

from __future__ import annotations

from stages.evaluate import summary_table

ESTIMATE = {"accuracy_mean": 0.727, "accuracy_std": 0.151, "macro_f1_mean": 0.649, "macro_f1_std": 0.153, "models": 22}


def rows_of(table: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()[2:]]


def test_the_search_rows_follow_the_models_and_name_how_the_choice_was_made():
    metrics = {"transfer_ridge": {"grouped": {"cv_accuracy_mean": 0.75, "cv_accuracy_std": 0.144}}}
    nested = {**ESTIMATE, "models": 11, "accuracy_mean": 0.725}
    search = {"by_accuracy": ESTIMATE, "by_macro_f1": {**ESTIMATE, "accuracy_mean": 0.708}}
    rows = rows_of(summary_table(metrics=metrics, nested=nested, champion="transfer_ridge", search=search))
    assert [row[0] for row in rows] == [
        "**transfer_ridge** (champion)",
        "champion choice, nested (11 models)",
        "transfer search, nested (22 configurations, chosen by accuracy)",
        "transfer search, nested (22 configurations, chosen by macro f1)",
    ]
    assert rows[2][1:3] == ["0.727 ± 0.151", "0.649 ± 0.153"] and rows[3][1] == "0.708 ± 0.151"
    assert len({len(row) for row in rows}) == 1  # every row fills every column


def test_without_a_search_there_is_no_search_row():
    table = summary_table(metrics={}, nested=None, champion=None, search=None)
    assert "transfer search" not in table

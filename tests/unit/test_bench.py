from cardfraud.bench import generator_table, markdown_table


def test_generator_table_has_row_per_run():
    table = generator_table([5_000, 10_000], seed=3).splitlines()
    assert len(table) == 5
    assert table[2].startswith("| vectorised | 5,000 |")
    assert table[3].startswith("| vectorised | 10,000 |")
    assert table[4].startswith("| per-row reference | 5,000 |")


def test_markdown_table_totals_seconds():
    rows = [
        {"stage": "a", "seconds": 1.5, "peak_rss_mib": 10},
        {"stage": "b", "seconds": 2.0, "peak_rss_mib": 12},
    ]
    table = markdown_table(rows).splitlines()
    assert table[-1] == "| total | 3.5 | |"
    assert table[2] == "| a | 1.5 | 10 |"

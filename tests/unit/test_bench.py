from cardfraud.bench import generator_table, markdown_table, time_generator


def test_time_generator_reports_rows_and_memory(tmp_path):
    result = time_generator(20_000, seed=3, out_dir=tmp_path / "out")
    assert 15_000 <= result["rows"] <= 25_000
    assert result["seconds"] > 0
    assert result["rows_per_second"] > 0
    assert result["peak_rss_mib"] > 50
    assert (tmp_path / "out" / "manifest.json").is_file()


def test_generator_table_has_row_per_size():
    table = generator_table([5_000, 10_000], seed=3).splitlines()
    assert len(table) == 4
    assert table[2].startswith("| 5,000 |")
    assert table[3].startswith("| 10,000 |")


def test_markdown_table_totals_seconds():
    rows = [
        {"stage": "a", "seconds": 1.5, "peak_rss_mib": 10},
        {"stage": "b", "seconds": 2.0, "peak_rss_mib": 12},
    ]
    table = markdown_table(rows).splitlines()
    assert table[-1] == "| total | 3.5 | |"
    assert table[2] == "| a | 1.5 | 10 |"

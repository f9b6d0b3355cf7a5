"""Tests of the Quarto project check and the site build in cardfraud.site."""

from __future__ import annotations

import base64
import html
import re
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml

from cardfraud.site import (
    Embed,
    build_site,
    check_quarto_project,
    find_embeds,
    parse_cell_options,
    read_cell_labels,
    read_front_matter,
    render_output,
)

ROOT = Path(__file__).resolve().parents[2]

# Labelled output cells of each stage notebook that the site pages embed.
EMBEDDED_LABELS: dict[str, list[str]] = {
    "01_generate": ["tbl-generate-summary", "tbl-scenarios", "fig-daily-volume"],
    "02_validate_raw": ["tbl-raw-validation", "tbl-raw-validation-failures"],
    "03_build_features": ["tbl-feature-lineage", "fig-feature-distributions"],
    "04_validate_features": [
        "tbl-feature-validation",
        "tbl-feature-validation-failures",
    ],
    "05_train": ["tbl-train-summary"],
    "06_evaluate": [
        "tbl-metrics",
        "tbl-scenario-recall",
        "fig-pr-curve",
        "fig-roc-curve",
    ],
    "07_explain": ["fig-shap-importance", "fig-shap-beeswarm"],
    "08_register": ["tbl-registration"],
    "09_report": ["tbl-pipeline-summary"],
}
# Labelled output cells of the monitor notebook that the monitoring post embeds.
MONITORING_LABELS: dict[str, list[str]] = {
    "11_monitor": [
        "tbl-monitor-alerts",
        "fig-monitor-drift",
        "fig-monitor-performance",
        "fig-monitor-decisions",
        "tbl-monitor-quality",
    ],
}

# A 1x1 PNG image, the output of every figure cell of the test notebooks.
PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
SOURCE_MARKER = "source_line_that_must_not_be_published"
STDOUT_MARKER = "stdout_line_of_a_labelled_cell"
STDERR_MARKER = "stderr_warning_that_must_not_be_published"


def write_notebook(path: Path, labels: list[str]) -> Path:
    """Write an executed-looking notebook with one labelled output cell per label."""
    cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}")]
    for label in labels:
        caption_key = "fig-cap" if label.startswith("fig-") else "tbl-cap"
        source = f'#| label: {label}\n#| {caption_key}: "Caption of {label}"\n'
        cell = nbformat.v4.new_code_cell(source + f"{SOURCE_MARKER} = 1")
        streams = [
            nbformat.v4.new_output("stream", name="stdout", text=STDOUT_MARKER),
            nbformat.v4.new_output("stream", name="stderr", text=STDERR_MARKER),
        ]
        if label.startswith("fig-"):
            data = {
                "image/png": base64.b64encode(PNG_1X1).decode(),
                "text/plain": "fig",
            }
            cell.outputs = [
                *streams,
                nbformat.v4.new_output("display_data", data=data),
            ]
        else:
            table = f"<table><tr><td>{label}</td></tr></table>"
            data = {"text/html": table, "text/plain": label}
            cell.outputs = [
                *streams,
                nbformat.v4.new_output("execute_result", data=data, execution_count=1),
            ]
        cells.append(cell)
    unlabelled = nbformat.v4.new_code_cell("unlabelled = 2")
    unlabelled.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text=STDERR_MARKER)
    ]
    cells.append(unlabelled)
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, path)
    return path


def write_executed_notebooks(
    folder: Path, labels: dict[str, list[str]] = EMBEDDED_LABELS | MONITORING_LABELS
) -> Path:
    """Write one labelled notebook per stage into ``folder`` and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    for stem, stage_labels in labels.items():
        write_notebook(folder / f"{stem}.ipynb", stage_labels)
    return folder


def assert_project_resolves(project_root: Path, executed_dir: Path) -> None:
    """Assert that every page, listing and embed of the project resolves.

    Args:
        project_root: Folder with ``_quarto.yml``.
        executed_dir: Folder of executed notebooks, looked up by file name.
    """
    problems = check_quarto_project(project_root, executed_dir=executed_dir)
    assert problems == []


def copy_site_project(dest: Path) -> Path:
    """Copy ``_quarto.yml`` and the site pages of the repository into ``dest``."""
    shutil.copy2(ROOT / "_quarto.yml", dest / "_quarto.yml")
    for page in (ROOT / "reports").rglob("*.qmd"):
        relative = page.relative_to(ROOT)
        if relative.parts[:2] == ("reports", "executed"):
            continue
        (dest / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(page, dest / relative)
    return dest


@pytest.fixture
def site_project(tmp_path: Path) -> Path:
    """A copy of the site project with labelled notebooks in reports/executed."""
    project = tmp_path / "project"
    project.mkdir()
    copy_site_project(project)
    write_executed_notebooks(project / "reports" / "executed")
    return project


def test_real_project_resolves_with_labelled_notebooks(tmp_path: Path) -> None:
    executed = write_executed_notebooks(tmp_path / "executed")
    assert_project_resolves(ROOT, executed)


def test_real_project_resolves_smoke_executed(executed_notebooks_dir: Path) -> None:
    assert_project_resolves(ROOT, executed_notebooks_dir)


def test_source_notebooks_declare_embedded_labels() -> None:
    embeds = find_embeds(ROOT)
    assert embeds
    missing = []
    for embed in embeds:
        labels = read_cell_labels(ROOT / "notebooks" / embed.notebook.name)
        if embed.label not in labels:
            missing.append(embed.target)
    assert missing == []


def test_case_study_embeds_every_stage_label() -> None:
    embeds = [e for e in find_embeds(ROOT) if e.page == Path("reports/index.qmd")]
    embedded = {(e.notebook.stem, e.label) for e in embeds}
    expected = {(stem, label) for stem, ls in EMBEDDED_LABELS.items() for label in ls}
    assert embedded == expected
    assert all(e.notebook.parent == Path("reports/executed") for e in embeds)


def test_posts_have_front_matter_and_embeds() -> None:
    posts = [
        p
        for p in sorted((ROOT / "reports" / "posts").glob("*.qmd"))
        if p.name != "index.qmd"
    ]
    assert len(posts) >= 2
    embedded_pages = {e.page for e in find_embeds(ROOT)}
    for post in posts:
        front_matter = read_front_matter(post)
        for key in ("title", "date", "description", "categories"):
            assert front_matter.get(key), f"{post.name} has no {key}"
        assert post.relative_to(ROOT) in embedded_pages, f"{post.name} embeds nothing"


def test_renamed_embed_label_fails(site_project: Path) -> None:
    assert check_quarto_project(site_project) == []
    page = site_project / "reports" / "index.qmd"
    text = page.read_text(encoding="utf-8")
    renamed = text.replace("#fig-pr-curve >}}", "#fig-precision-recall >}}")
    assert renamed != text
    page.write_text(renamed, encoding="utf-8")

    problems = check_quarto_project(site_project)

    assert len(problems) == 1
    assert "reports/index.qmd" in problems[0]
    assert "#| label: fig-precision-recall" in problems[0]
    assert "fig-pr-curve" in problems[0]


def test_renamed_cell_label_fails(site_project: Path) -> None:
    labels = dict(EMBEDDED_LABELS | MONITORING_LABELS)
    labels["06_evaluate"] = ["tbl-metrics", "tbl-scenario-recall", "fig-roc-curve"]
    labels["06_evaluate"].append("fig-precision-recall")
    write_executed_notebooks(site_project / "reports" / "executed", labels)

    problems = check_quarto_project(site_project)

    # The case study and the evaluation post both embed fig-pr-curve.
    assert len(problems) == 2
    assert all("06_evaluate.ipynb#fig-pr-curve" in p for p in problems)


def test_missing_notebook_fails(site_project: Path) -> None:
    (site_project / "reports" / "executed" / "07_explain.ipynb").unlink()

    problems = check_quarto_project(site_project)

    assert len(problems) == 2
    assert all("07_explain.ipynb" in p for p in problems)
    assert all("does not exist" in p for p in problems)


def test_executed_dir_lookup_by_file_name(site_project: Path, tmp_path: Path) -> None:
    elsewhere = write_executed_notebooks(tmp_path / "elsewhere")
    shutil.rmtree(site_project / "reports" / "executed")

    assert check_quarto_project(site_project, executed_dir=elsewhere) == []
    assert len(check_quarto_project(site_project)) == len(find_embeds(site_project))


def test_missing_navbar_page_fails(site_project: Path) -> None:
    (site_project / "reports" / "posts" / "index.qmd").unlink()

    problems = check_quarto_project(site_project)

    assert len(problems) == 1
    assert "website.navbar.left" in problems[0]
    assert "reports/posts/index.qmd" in problems[0]


def test_unrendered_navbar_page_fails(site_project: Path) -> None:
    config_path = site_project / "_quarto.yml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    config["website"]["navbar"]["left"].append({"href": "about.qmd", "text": "About"})
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    (site_project / "about.qmd").write_text(
        "---\ntitle: About\n---\n", encoding="utf-8"
    )

    problems = check_quarto_project(site_project)

    assert len(problems) == 1
    assert "'about.qmd'" in problems[0]
    assert "project.render" in problems[0]


def test_listing_without_match_fails(site_project: Path) -> None:
    posts = site_project / "reports" / "posts"
    for post in posts.glob("*.qmd"):
        if post.name != "index.qmd":
            post.unlink()

    problems = check_quarto_project(site_project)

    assert len(problems) == 1
    assert "listing contents" in problems[0]
    assert "reports/posts/index.qmd" in problems[0]


def test_render_entry_without_match_fails(site_project: Path) -> None:
    config_path = site_project / "_quarto.yml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    config["project"]["render"].append("reports/missing.qmd")
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")

    problems = check_quarto_project(site_project)

    assert len(problems) == 1
    assert "'reports/missing.qmd'" in problems[0]


def test_render_exclusion_removes_pages(site_project: Path) -> None:
    config_path = site_project / "_quarto.yml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    config["project"]["render"].append("!reports/posts/evaluating-against-time.qmd")
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")

    pages = {e.page for e in find_embeds(site_project)}

    assert Path("reports/posts/reproducible-pipeline.qmd") in pages
    assert Path("reports/posts/evaluating-against-time.qmd") not in pages
    assert check_quarto_project(site_project) == []


def test_missing_quarto_config_fails(tmp_path: Path) -> None:
    problems = check_quarto_project(tmp_path)

    assert len(problems) == 1
    assert "_quarto.yml" in problems[0]


def test_find_embeds_parses_shortcodes(tmp_path: Path) -> None:
    (tmp_path / "_quarto.yml").write_text(
        "project:\n  type: website\n  render: [pages/*.qmd]\n", encoding="utf-8"
    )
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "a.qmd").write_text(
        "Text {{< embed ../nb/one.ipynb#fig-a echo=true >}}\n"
        "{{< embed two.ipynb >}}\n"
        "Shown literally: {{{< embed three.ipynb#tbl-x >}}}\n",
        encoding="utf-8",
    )

    embeds = find_embeds(tmp_path)

    assert embeds == [
        Embed(page=Path("pages/a.qmd"), notebook=Path("nb/one.ipynb"), label="fig-a"),
        Embed(page=Path("pages/a.qmd"), notebook=Path("pages/two.ipynb"), label=None),
    ]


def test_parse_cell_options_reads_yaml() -> None:
    source = '#| label: fig-x\n#| fig-cap: "Recall: by scenario"\nx = 1\n#| late: 1'

    assert parse_cell_options(source) == {
        "label": "fig-x",
        "fig-cap": "Recall: by scenario",
    }
    assert parse_cell_options("x = 1\n#| label: fig-x") == {}
    assert parse_cell_options("#| not: [valid") == {}


def test_fallback_build_writes_pages(tmp_path: Path) -> None:
    executed = write_executed_notebooks(tmp_path / "executed")
    out = tmp_path / "site"

    index = build_site(ROOT, out, executed_dir=executed, use_quarto=False)

    assert index == out / "index.html"
    for stem in EMBEDDED_LABELS:
        assert (out / "notebooks" / f"{stem}.html").is_file()
    index_html = index.read_text(encoding="utf-8")
    assert "<h1>Card-fraud prediction: a case study</h1>" in index_html
    assert "{{<" not in index_html
    source_link = 'href="notebooks/06_evaluate.html#fig-pr-curve">from 06_evaluate</a>'
    assert source_link in index_html
    assert "<figcaption>Caption of fig-pr-curve <small>" in index_html
    assert 'href="posts/evaluating-against-time.html"' in index_html
    notebook_html = (out / "notebooks" / "06_evaluate.html").read_text()
    assert SOURCE_MARKER not in notebook_html
    assert "Caption of fig-pr-curve" in notebook_html
    post_html = (out / "posts" / "evaluating-against-time.html").read_text()
    assert 'href="../notebooks/06_evaluate.html#fig-pr-curve"' in post_html


def link_resolves(page: Path, href: str) -> bool:
    """Return whether a relative href of a page names an existing file and anchor."""
    path, _, anchor = href.partition("#")
    target = (page.parent / path).resolve()
    if not target.is_file():
        return False
    return not anchor or f'id="{anchor}"' in target.read_text(encoding="utf-8")


def test_fallback_links_resolve(tmp_path: Path) -> None:
    executed = write_executed_notebooks(tmp_path / "executed")
    out = tmp_path / "site"
    build_site(ROOT, out, executed_dir=executed, use_quarto=False)
    pages = sorted(out.rglob("*.html"))
    # The case study, three posts, the blog listing and one page per notebook.
    assert len(pages) == 1 + 4 + len(EMBEDDED_LABELS | MONITORING_LABELS)

    broken = []
    for page in pages:
        for href in re.findall(r'href="([^"]+)"', page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:|^#", href):
                continue
            if not link_resolves(page, href):
                broken.append(f"{page.name}: {href}")
    assert broken == []


@pytest.fixture(scope="module")
def fallback_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's site built with nbconvert from the labelled notebooks."""
    executed = write_executed_notebooks(tmp_path_factory.mktemp("executed"))
    out = tmp_path_factory.mktemp("site")
    build_site(ROOT, out, executed_dir=executed, use_quarto=False)
    return out


def case_study_embeds(prefix: str) -> list[Embed]:
    """Return the case study's embeds whose label starts with ``prefix``."""
    return [
        embed
        for embed in find_embeds(ROOT)
        if embed.page == Path("reports/index.qmd")
        and embed.label is not None
        and embed.label.startswith(prefix)
    ]


def test_fallback_index_inlines_figures(fallback_site: Path) -> None:
    index_html = (fallback_site / "index.html").read_text(encoding="utf-8")
    figures = case_study_embeds("fig-")
    png = base64.b64encode(PNG_1X1).decode()

    assert len(figures) == 6
    assert index_html.count("<img ") == len(figures)
    for embed in figures:
        caption = f"Caption of {embed.label}"
        img = f'<img src="data:image/png;base64,{png}" alt="{caption}">'
        assert img in index_html, embed.label
        assert f"{img}\n<figcaption>{caption} <small>" in index_html, embed.label


def test_fallback_index_inlines_tables(fallback_site: Path) -> None:
    index_html = (fallback_site / "index.html").read_text(encoding="utf-8")
    tables = case_study_embeds("tbl-")

    assert len(tables) == 12
    assert index_html.count("<table>") == len(tables)
    for embed in tables:
        stem = embed.notebook.stem
        caption_first = (
            f'<figure class="embed" id="{embed.label}">\n'
            f"<figcaption>Caption of {embed.label} <small>"
            f'<a class="embed-source" href="notebooks/{stem}.html#{embed.label}">'
            f"from {stem}</a></small></figcaption>\n"
            f"<table><tr><td>{embed.label}</td></tr></table>"
        )
        assert caption_first in index_html, embed.label


def test_fallback_pages_omit_streams(fallback_site: Path) -> None:
    pages = sorted(fallback_site.rglob("*.html"))
    assert len(pages) == 1 + 4 + len(EMBEDDED_LABELS | MONITORING_LABELS)
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert STDERR_MARKER not in text, page.name
        if page.parent.name != "notebooks":
            assert STDOUT_MARKER not in text, page.name
    notebook_html = (fallback_site / "notebooks" / "06_evaluate.html").read_text()
    assert STDOUT_MARKER in notebook_html
    assert SOURCE_MARKER not in notebook_html


def test_fallback_listing_lists_every_post(fallback_site: Path) -> None:
    listing_html = (fallback_site / "posts" / "index.html").read_text(encoding="utf-8")
    listing_source = read_front_matter(ROOT / "reports" / "posts" / "index.qmd")
    posts = [
        post
        for post in sorted((ROOT / "reports" / "posts").glob("*.qmd"))
        if post.name != "index.qmd"
    ]

    assert f"<h1>{listing_source['title']}</h1>" in listing_html
    assert html.escape(listing_source["description"]) in listing_html
    assert listing_html.count('<li class="post">') == len(posts)
    dated_positions = []
    for post in posts:
        front_matter = read_front_matter(post)
        link = f'<a href="{post.stem}.html">{html.escape(front_matter["title"])}</a>'
        date = str(front_matter["date"])
        assert link in listing_html, post.name
        assert f'<time datetime="{date}">{date}</time>' in listing_html, post.name
        assert html.escape(front_matter["description"]) in listing_html, post.name
        dated_positions.append((date, listing_html.index(link)))
    newest_first = sorted(dated_positions, reverse=True)
    assert [pos for _, pos in newest_first] == sorted(pos for _, pos in newest_first)


@pytest.mark.parametrize(
    "page",
    [
        "index.html",
        "posts/index.html",
        "posts/evaluating-against-time.html",
        "notebooks/06_evaluate.html",
    ],
)
def test_fallback_navbar_links_resolve(fallback_site: Path, page: str) -> None:
    path = fallback_site / page
    text = path.read_text(encoding="utf-8")
    navbar = re.search(r"<nav\b.*?</nav>", text, re.S)
    assert navbar is not None
    assert text.count("<nav") == 1

    links = re.findall(r'href="([^"]+)">(.*?)</a>', navbar.group(0))
    targets = [((path.parent / href).resolve(), label) for href, label in links]
    site = fallback_site.resolve()
    assert targets == [
        (site / "index.html", "<strong>Card-fraud prediction</strong>"),
        (site / "index.html", "Case study"),
        (site / "posts" / "index.html", "Blog"),
    ]
    assert all(target.is_file() for target, _ in targets)


def test_fallback_navbar_skips_unbuilt_page(
    site_project: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config_path = site_project / "_quarto.yml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    config["website"]["navbar"]["right"] = [
        {"href": "about.qmd", "text": "About"},
        {"href": "https://example.org/", "text": "External"},
    ]
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    out = tmp_path / "site"

    index = build_site(site_project, out, use_quarto=False)

    navbar = re.search(r"<nav\b.*?</nav>", index.read_text(encoding="utf-8"), re.S)
    assert navbar is not None
    assert ">About</a>" not in navbar.group(0)
    assert '<a href="https://example.org/">External</a>' in navbar.group(0)
    assert "navbar link 'about.qmd' left out" in caplog.text


def test_fallback_missing_label_raises(tmp_path: Path) -> None:
    labels = dict(EMBEDDED_LABELS | MONITORING_LABELS)
    labels["06_evaluate"] = ["tbl-metrics", "tbl-scenario-recall", "fig-roc-curve"]
    executed = write_executed_notebooks(tmp_path / "executed", labels)
    out = tmp_path / "site"

    with pytest.raises(ValueError, match="2 embeds not found in") as error:
        build_site(ROOT, out, executed_dir=executed, use_quarto=False)

    assert "06_evaluate.ipynb#fig-pr-curve" in str(error.value)
    assert not out.exists()


def test_render_output_picks_richest_type() -> None:
    plain = nbformat.v4.new_output(
        "execute_result", data={"text/plain": "a < b"}, execution_count=1
    )
    table = nbformat.v4.new_output(
        "execute_result",
        data={"text/html": "<table></table>", "text/plain": "t"},
        execution_count=1,
    )
    svg = nbformat.v4.new_output(
        "display_data", data={"image/svg+xml": "<svg/>", "text/html": "<p>x</p>"}
    )
    stream = nbformat.v4.new_output("stream", name="stdout", text="progress")
    svg_payload = base64.b64encode(b"<svg/>").decode()

    assert render_output(plain, alt="unused") == "<pre>a &lt; b</pre>"
    assert render_output(table, alt="unused") == "<table></table>"
    assert render_output(svg, alt='A "quoted" alt') == (
        f'<img src="data:image/svg+xml;base64,{svg_payload}" '
        'alt="A &quot;quoted&quot; alt">'
    )
    assert render_output(stream, alt="unused") is None


def test_fallback_build_is_byte_identical(tmp_path: Path) -> None:
    executed = write_executed_notebooks(tmp_path / "executed")
    first = tmp_path / "first"
    second = tmp_path / "second"
    build_site(ROOT, first, executed_dir=executed, use_quarto=False)
    build_site(ROOT, second, executed_dir=executed, use_quarto=False)

    first_pages = sorted(p.relative_to(first) for p in first.rglob("*.html"))
    second_pages = sorted(p.relative_to(second) for p in second.rglob("*.html"))
    assert first_pages == second_pages
    for page in first_pages:
        assert (first / page).read_bytes() == (second / page).read_bytes(), page


def test_fallback_without_notebooks_raises(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no executed notebook"):
        build_site(
            ROOT, tmp_path / "site", executed_dir=tmp_path / "empty", use_quarto=False
        )


def test_build_site_runs_quarto_on_path(
    site_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    args_file = tmp_path / "quarto-args.txt"
    fake_quarto = bin_dir / "quarto"
    fake_quarto.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGS_FILE"\n')
    fake_quarto.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("ARGS_FILE", str(args_file))
    out = tmp_path / "site"

    index = build_site(site_project, out)

    assert index == out / "index.html"
    arguments = args_file.read_text().splitlines()
    assert arguments == [
        "render",
        str(site_project.resolve()),
        "--output-dir",
        str(out),
    ]


def test_build_site_requires_quarto_raises(
    site_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    with pytest.raises(FileNotFoundError, match="quarto not found on PATH"):
        build_site(site_project, tmp_path / "site", use_quarto=True)


def test_fallback_index_shows_validation_failures(tmp_path: Path) -> None:
    from cardfraud.validation import (
        ExpectationOutcome,
        ValidationReport,
        failure_table,
    )

    outcome = ExpectationOutcome(
        name="card_id_not_null",
        expectation="expect_column_values_to_not_be_null",
        column="card_id",
        success=False,
        unexpected_count=3,
        examples=[None, None, None],
        observed_value=None,
        error=None,
    )
    report = ValidationReport(
        suite="raw_transactions", rows=500, parameters={}, outcomes=[outcome]
    )
    executed = write_executed_notebooks(tmp_path / "executed")
    path = executed / "02_validate_raw.ipynb"
    notebook = nbformat.read(path, as_version=4)
    label = "tbl-raw-validation-failures"
    (cell,) = [c for c in notebook.cells if f"label: {label}" in c.source]
    cell.outputs = [
        nbformat.v4.new_output(
            "execute_result",
            data={"text/html": failure_table(report).to_html()},
            execution_count=1,
        )
    ]
    nbformat.write(notebook, path)
    out = tmp_path / "site"
    build_site(ROOT, out, executed_dir=executed, use_quarto=False)

    index_html = (out / "index.html").read_text(encoding="utf-8")
    section = index_html.split("<h2>Data validation</h2>", 1)[1]
    figure = section.split(f'<figure class="embed" id="{label}">', 1)[1]
    figure = figure.split("</figure>", 1)[0]
    assert "<th>card_id_not_null</th>" in figure
    assert "<td>card_id</td>" in figure
    assert "<td>3</td>" in figure
    assert "<td>null, null, null</td>" in figure

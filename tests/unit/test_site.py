"""Tests of the Quarto project check and the site build in cardfraud.site."""

from __future__ import annotations

import base64
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
)

ROOT = Path(__file__).resolve().parents[2]

# Labelled output cells of each stage notebook that the site pages embed.
EMBEDDED_LABELS: dict[str, list[str]] = {
    "01_generate": ["tbl-generate-summary", "tbl-scenarios", "fig-daily-volume"],
    "02_validate_raw": ["tbl-raw-validation"],
    "03_build_features": ["tbl-feature-lineage", "fig-feature-distributions"],
    "04_validate_features": ["tbl-feature-validation"],
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

# A 1x1 PNG image, the output of every figure cell of the test notebooks.
PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
SOURCE_MARKER = "source_line_that_must_not_be_published"


def write_notebook(path: Path, labels: list[str]) -> Path:
    """Write an executed-looking notebook with one labelled output cell per label."""
    cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}")]
    for label in labels:
        caption_key = "fig-cap" if label.startswith("fig-") else "tbl-cap"
        source = f'#| label: {label}\n#| {caption_key}: "Caption of {label}"\n'
        cell = nbformat.v4.new_code_cell(source + f"{SOURCE_MARKER} = 1")
        if label.startswith("fig-"):
            data = {
                "image/png": base64.b64encode(PNG_1X1).decode(),
                "text/plain": "fig",
            }
            cell.outputs = [nbformat.v4.new_output("display_data", data=data)]
        else:
            table = f"<table><tr><td>{label}</td></tr></table>"
            data = {"text/html": table, "text/plain": label}
            cell.outputs = [
                nbformat.v4.new_output("execute_result", data=data, execution_count=1)
            ]
        cells.append(cell)
    cells.append(nbformat.v4.new_code_cell("unlabelled = 2"))
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, path)
    return path


def write_executed_notebooks(
    folder: Path, labels: dict[str, list[str]] = EMBEDDED_LABELS
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
    labels = dict(EMBEDDED_LABELS)
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
    assert 'href="notebooks/06_evaluate.html#fig-pr-curve"' in index_html
    assert ">Caption of fig-pr-curve</a>" in index_html
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
    assert len(pages) == 1 + 2 + len(EMBEDDED_LABELS)

    broken = []
    for page in pages:
        for href in re.findall(r'href="([^"]+)"', page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:|^#", href):
                continue
            if not link_resolves(page, href):
                broken.append(f"{page.name}: {href}")
    assert broken == []


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

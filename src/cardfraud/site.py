"""Check and build the Quarto case-study site.

The site is a Quarto website project (``_quarto.yml`` at the project root) whose pages
embed labelled output cells of the executed stage notebooks with the
``{{< embed path.ipynb#label >}}`` shortcode. Quarto is not installable everywhere, so
this module also checks the project without Quarto (pages, listings and embeds all
resolve) and builds a plain fallback site with nbconvert when ``quarto`` is not on
PATH.

Run ``python -m cardfraud.site check`` or ``python -m cardfraud.site build``.
"""

from __future__ import annotations

import copy
import fnmatch
import html
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import yaml
from markdown_it import MarkdownIt
from nbconvert import HTMLExporter

logger = logging.getLogger(__name__)

QUARTO_CONFIG = "_quarto.yml"
CASE_STUDY_PAGE = Path("reports") / "index.qmd"
EXECUTED_DIR = Path("reports") / "executed"
NOTEBOOK_PAGES_DIR = "notebooks"
PAGE_SUFFIXES = (".qmd", ".md", ".ipynb")

# A shortcode escaped as {{{< embed ... >}}} is shown literally by Quarto, so the
# lookbehind skips it.
EMBED_PATTERN = re.compile(
    r"(?<!\{)\{\{<\s*embed\s+(?P<target>[^\s>]+)(?P<options>[^>]*)>\}\}"
)
CELL_OPTION_PREFIX = "#|"
FRONT_MATTER_PATTERN = re.compile(
    r"\A---[ \t]*\n(?P<yaml>.*?)\n---[ \t]*(?:\n|\Z)", re.S
)
FENCED_DIV_PATTERN = re.compile(r"^:{3,}.*$", re.M)
CELL_ID_INVALID = re.compile(r"[^a-zA-Z0-9_-]")
EXTERNAL_HREF_PATTERN = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|#|/)", re.I)


@dataclass(frozen=True)
class Embed:
    """One ``{{< embed >}}`` shortcode of a page.

    Attributes:
        page: Page that contains the shortcode, relative to the project root.
        notebook: Embedded notebook, relative to the project root, resolved from the
            page's folder as Quarto resolves it.
        label: Value of the ``#| label:`` cell option that selects the cell, or None
            when the whole notebook is embedded.
    """

    page: Path
    notebook: Path
    label: str | None

    @property
    def target(self) -> str:
        """Shortcode target as ``notebook-file#label``, for messages."""
        suffix = f"#{self.label}" if self.label else ""
        return f"{self.notebook.as_posix()}{suffix}"


def load_quarto_config(project_root: Path) -> dict[str, Any]:
    """Read ``_quarto.yml`` of a project.

    Args:
        project_root: Folder that contains ``_quarto.yml``.

    Returns:
        The parsed configuration, an empty dict for an empty file.

    Raises:
        FileNotFoundError: When ``_quarto.yml`` is missing.
        ValueError: When the file is not a YAML mapping.
    """
    path = Path(project_root) / QUARTO_CONFIG
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: a Quarto project needs {QUARTO_CONFIG} at its root"
        )
    config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(config, dict):
        raise ValueError(
            f"{path} contains a {type(config).__name__}, expected a YAML mapping"
        )
    return config


def read_front_matter(page: Path) -> dict[str, Any]:
    """Parse the YAML front matter of a ``.qmd`` or ``.md`` page.

    Args:
        page: Page file.

    Returns:
        The front matter mapping, an empty dict when the page has none.

    Raises:
        ValueError: When the front matter is not a YAML mapping.
    """
    match = FRONT_MATTER_PATTERN.match(page.read_text(encoding="utf-8"))
    if match is None:
        return {}
    front_matter = yaml.safe_load(match.group("yaml")) or {}
    if not isinstance(front_matter, dict):
        raise ValueError(f"front matter of {page} is not a YAML mapping of options")
    return front_matter


def read_cell_labels(notebook_path: Path) -> dict[str, dict[str, Any]]:
    """Collect the Quarto cell options of every labelled code cell of a notebook.

    Cell options are the ``#| key: value`` lines at the top of a code cell's source.

    Args:
        notebook_path: ``.ipynb`` file.

    Returns:
        Cell options keyed by the value of their ``label`` option, in cell order.
    """
    notebook = nbformat.read(notebook_path, as_version=4)
    labelled: dict[str, dict[str, Any]] = {}
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        options = parse_cell_options(cell.source)
        label = options.get("label")
        if isinstance(label, str) and label:
            labelled[label] = options
    return labelled


def parse_cell_options(source: str) -> dict[str, Any]:
    """Parse the ``#|`` option lines at the top of a code cell's source as YAML.

    Args:
        source: Cell source.

    Returns:
        The options, an empty dict when the cell has none or they are not a mapping.
    """
    option_lines = []
    for line in source.splitlines():
        stripped = line.strip()
        if not stripped.startswith(CELL_OPTION_PREFIX):
            break
        option_lines.append(stripped[len(CELL_OPTION_PREFIX) :])
    if not option_lines:
        return {}
    try:
        options = yaml.safe_load("\n".join(option_lines))
    except yaml.YAMLError:
        logger.warning("cell options are not valid YAML: %r", option_lines)
        return {}
    return options if isinstance(options, dict) else {}


def expand_render_targets(project_root: Path, config: dict[str, Any]) -> list[Path]:
    """List the pages Quarto renders: ``project.render`` expanded, else every page.

    A render entry starting with ``!`` removes the pages it matches.

    Args:
        project_root: Project folder.
        config: Parsed ``_quarto.yml``.

    Returns:
        Existing page files relative to the project root, sorted, without duplicates.
    """
    patterns = (config.get("project") or {}).get("render")
    if not patterns:
        return sorted(find_default_pages(project_root))
    pages: set[Path] = set()
    excluded: list[str] = []
    for pattern in patterns:
        if pattern.startswith("!"):
            excluded.append(pattern[1:])
            continue
        pages.update(
            path.relative_to(project_root) for path in project_root.glob(pattern)
        )
    return sorted(
        page
        for page in pages
        if (project_root / page).is_file()
        and not any(fnmatch.fnmatch(page.as_posix(), pattern) for pattern in excluded)
    )


def find_default_pages(project_root: Path) -> Iterator[Path]:
    """Yield the pages Quarto renders without a render list.

    Quarto skips files and folders whose names start with ``.`` or ``_``.
    """
    for path in project_root.rglob("*"):
        relative = path.relative_to(project_root)
        if any(part.startswith((".", "_")) for part in relative.parts):
            continue
        if path.suffix in (".qmd", ".md") and path.is_file():
            yield relative


def find_embeds(project_root: Path) -> list[Embed]:
    """Find every ``{{< embed >}}`` shortcode in the pages of a Quarto project.

    Args:
        project_root: Folder that contains ``_quarto.yml``.

    Returns:
        Embeds in page order, then in order of appearance within a page.
    """
    project_root = Path(project_root)
    config = load_quarto_config(project_root)
    embeds: list[Embed] = []
    for page in expand_render_targets(project_root, config):
        if page.suffix == ".ipynb":
            continue
        text = (project_root / page).read_text(encoding="utf-8")
        embeds.extend(parse_embeds(text, page=page))
    return embeds


def parse_embeds(text: str, *, page: Path) -> list[Embed]:
    """Parse the embed shortcodes of one page's text.

    Args:
        text: Page source.
        page: Page path relative to the project root; notebook paths in the
            shortcodes are relative to its folder.

    Returns:
        The page's embeds in order of appearance.
    """
    embeds = []
    for match in EMBED_PATTERN.finditer(text):
        notebook_ref, _, label = match.group("target").partition("#")
        notebook = Path(os.path.normpath(page.parent / notebook_ref))
        embeds.append(Embed(page=page, notebook=notebook, label=label or None))
    return embeds


def check_quarto_project(
    project_root: Path, *, executed_dir: Path | None = None
) -> list[str]:
    """Check that every page, listing and embed of a Quarto project resolves.

    Each ``project.render`` entry must match a file, and each navbar and sidebar
    page must exist and be rendered. Each listing's ``contents`` glob must match at
    least one file. Each embedded notebook must exist and have a code cell whose
    ``#| label:`` is the embed's label.

    Args:
        project_root: Folder that contains ``_quarto.yml``.
        executed_dir: Folder to look up embedded notebooks in by file name, for
            notebooks executed elsewhere. None looks them up at their path.

    Returns:
        One sentence per problem found, empty when the project resolves.
    """
    project_root = Path(project_root)
    try:
        config = load_quarto_config(project_root)
    except (FileNotFoundError, ValueError, yaml.YAMLError) as error:
        return [str(error)]

    pages = expand_render_targets(project_root, config)
    problems = check_render_list(project_root, config)
    problems += check_navigation(project_root, config, rendered=set(pages))
    problems += check_listings(project_root, pages)
    problems += check_embeds(project_root, find_embeds(project_root), executed_dir)
    if problems:
        logger.warning("%d problems in Quarto project %s", len(problems), project_root)
    return problems


def check_render_list(project_root: Path, config: dict[str, Any]) -> list[str]:
    """Report ``project.render`` entries that match no file."""
    problems = []
    for pattern in (config.get("project") or {}).get("render") or []:
        if pattern.startswith("!"):
            continue
        if not any(path.is_file() for path in project_root.glob(pattern)):
            problems.append(
                f"project.render entry {pattern!r} in {QUARTO_CONFIG} matches no file: "
                "create the page or remove the entry"
            )
    return problems


def check_navigation(
    project_root: Path, config: dict[str, Any], *, rendered: set[Path]
) -> list[str]:
    """Report navbar and sidebar pages that do not exist or are not rendered."""
    problems = []
    has_render_list = bool((config.get("project") or {}).get("render"))
    for where, href in iter_navigation_hrefs(config.get("website") or {}):
        page = Path(os.path.normpath(href))
        if not (project_root / page).is_file():
            problems.append(
                f"{where} links to {href!r}, which does not exist: create the page "
                f"or fix the link in {QUARTO_CONFIG}"
            )
        elif has_render_list and page.suffix in PAGE_SUFFIXES and page not in rendered:
            problems.append(
                f"{where} links to {href!r}, which project.render does not include: "
                "add it to the render list"
            )
    return problems


def iter_navigation_hrefs(website: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Yield ``(where, href)`` for every local page in the navbar and sidebars."""
    navbar = website.get("navbar") or {}
    for side in ("left", "right"):
        yield from iter_item_hrefs(
            navbar.get(side) or [], where=f"website.navbar.{side}"
        )
    sidebars = website.get("sidebar") or []
    if isinstance(sidebars, dict):
        sidebars = [sidebars]
    for index, sidebar in enumerate(sidebars):
        contents = sidebar.get("contents") or []
        if isinstance(contents, str):
            contents = [contents]
        yield from iter_item_hrefs(contents, where=f"website.sidebar[{index}]")


def iter_item_hrefs(items: Iterable[Any], *, where: str) -> Iterator[tuple[str, str]]:
    """Yield the local hrefs of navigation items, descending into menus and sections.

    An item is a path string or a mapping with ``href``, ``file`` or nested
    ``menu``/``contents``. The sidebar value ``auto`` and external links are skipped.
    """
    for item in items:
        if isinstance(item, str):
            href = item
        elif isinstance(item, dict):
            for key in ("menu", "contents"):
                nested = item.get(key)
                if isinstance(nested, list):
                    yield from iter_item_hrefs(nested, where=where)
            href = item.get("href") or item.get("file")
        else:
            continue
        if not isinstance(href, str) or href == "auto":
            continue
        if EXTERNAL_HREF_PATTERN.match(href):
            continue
        yield where, href.split("#", 1)[0]


def check_listings(project_root: Path, pages: Sequence[Path]) -> list[str]:
    """Report listing ``contents`` globs that match no file.

    Globs are relative to the listing page's folder, and the listing page itself
    never counts as a match.
    """
    problems = []
    for page in pages:
        if page.suffix not in (".qmd", ".md"):
            continue
        for contents in iter_listing_contents(read_front_matter(project_root / page)):
            if not match_listing_contents(project_root, page, contents):
                problems.append(
                    f"listing contents {contents!r} of {page.as_posix()} matches no "
                    "file: add an item or fix the glob"
                )
    return problems


def iter_listing_contents(front_matter: dict[str, Any]) -> Iterator[list[str]]:
    """Yield the path and glob entries of each listing in a page's front matter.

    Inline item mappings in ``contents`` are not files and are left out.
    """
    listings = front_matter.get("listing")
    if listings is None:
        return
    if isinstance(listings, dict):
        listings = [listings]
    for listing in listings:
        contents = listing.get("contents") if isinstance(listing, dict) else None
        if contents is None:
            continue
        if isinstance(contents, str):
            contents = [contents]
        entries = [entry for entry in contents if isinstance(entry, str)]
        if entries:
            yield entries


def match_listing_contents(
    project_root: Path, page: Path, contents: Sequence[str]
) -> list[Path]:
    """Return the files that a listing's contents select, relative to the page's folder.

    A folder entry selects the pages inside it, and an entry starting with ``!``
    removes the files it matches.
    """
    base = project_root / page.parent
    included: set[Path] = set()
    excluded: list[str] = []
    for entry in contents:
        if entry.startswith("!"):
            excluded.append(entry[1:])
            continue
        for path in base.glob(entry):
            if path.is_dir():
                included.update(p for p in path.rglob("*") if p.suffix in PAGE_SUFFIXES)
            elif path.is_file():
                included.add(path)
    included.discard(project_root / page)
    relative = {path.relative_to(base) for path in included}
    selected = [
        path
        for path in relative
        if not any(fnmatch.fnmatch(path.as_posix(), pattern) for pattern in excluded)
    ]
    return sorted(selected)


def check_embeds(
    project_root: Path, embeds: Sequence[Embed], executed_dir: Path | None
) -> list[str]:
    """Report embeds whose notebook is missing or has no cell with their label."""
    problems = []
    labels_by_notebook: dict[Path, dict[str, dict[str, Any]]] = {}
    for embed in embeds:
        notebook_path = locate_notebook(project_root, embed, executed_dir)
        if not notebook_path.is_file():
            problems.append(
                f"{embed.page.as_posix()} embeds {embed.target}, but {notebook_path} "
                "does not exist: execute the notebooks or fix the path"
            )
            continue
        if embed.label is None:
            continue
        if notebook_path not in labels_by_notebook:
            labels_by_notebook[notebook_path] = read_cell_labels(notebook_path)
        labels = labels_by_notebook[notebook_path]
        if embed.label not in labels:
            problems.append(
                f"{embed.page.as_posix()} embeds {embed.target}, but {notebook_path} "
                f"has no code cell with '#| label: {embed.label}' (labels there: "
                f"{', '.join(labels) or 'none'}): fix the shortcode or the cell label"
            )
    return problems


def locate_notebook(
    project_root: Path, embed: Embed, executed_dir: Path | None
) -> Path:
    """Return an embed's notebook: by name in ``executed_dir``, else at its path."""
    if executed_dir is not None:
        return Path(executed_dir) / embed.notebook.name
    return project_root / embed.notebook


def build_site(
    project_root: Path,
    out_dir: Path,
    *,
    executed_dir: Path | None = None,
    use_quarto: bool | None = None,
) -> Path:
    """Build the site with ``quarto render``, or with nbconvert where Quarto is absent.

    Args:
        project_root: Folder that contains ``_quarto.yml``.
        out_dir: Folder that receives the site; created when missing.
        executed_dir: Executed notebooks for the nbconvert build; defaults to
            ``reports/executed`` under the project root. Quarto reads the notebooks
            at the paths the pages name.
        use_quarto: True requires Quarto, False forces the nbconvert build, None
            uses Quarto when ``quarto`` is on PATH.

    Returns:
        The site's ``index.html``.

    Raises:
        FileNotFoundError: When Quarto is required but not on PATH, or the nbconvert
            build finds no executed notebook.
        subprocess.CalledProcessError: When ``quarto render`` fails.
    """
    project_root = Path(project_root).resolve()
    out_dir = Path(out_dir).resolve()
    quarto = shutil.which("quarto")
    if use_quarto and quarto is None:
        raise FileNotFoundError(
            "quarto not found on PATH: install Quarto or build with use_quarto=False"
        )
    if quarto is not None and use_quarto is not False:
        return render_with_quarto(quarto, project_root, out_dir)
    notebooks_dir = executed_dir or project_root / EXECUTED_DIR
    return build_fallback_site(project_root, out_dir, executed_dir=Path(notebooks_dir))


def render_with_quarto(quarto: str, project_root: Path, out_dir: Path) -> Path:
    """Run ``quarto render`` on the project into ``out_dir``."""
    command = [quarto, "render", str(project_root), "--output-dir", str(out_dir)]
    logger.info("rendering the site: %s", " ".join(command))
    subprocess.run(command, cwd=project_root, check=True)
    return out_dir / "index.html"


def build_fallback_site(
    project_root: Path, out_dir: Path, *, executed_dir: Path
) -> Path:
    """Export executed notebooks to HTML and write an index page from the case study.

    The index page contains the case study converted from Markdown, with each embed
    replaced by a link to the notebook page and the cell's anchor, and a list of the
    notebook pages. Posts are converted the same way into ``posts/``.

    Args:
        project_root: Folder that contains ``_quarto.yml`` and ``reports/``.
        out_dir: Folder that receives the site.
        executed_dir: Folder of executed ``.ipynb`` files.

    Returns:
        The site's ``index.html``.

    Raises:
        FileNotFoundError: When ``executed_dir`` contains no notebook.
    """
    notebooks = sorted(Path(executed_dir).glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(
            f"no executed notebook in {executed_dir}: run the pipeline or the smoke "
            "notebooks first"
        )
    logger.info(
        "quarto not used: exporting %d notebooks with nbconvert", len(notebooks)
    )
    notebook_pages = export_notebooks(notebooks, out_dir / NOTEBOOK_PAGES_DIR)
    captions = collect_captions(notebooks)
    post_pages = write_post_pages(project_root, out_dir, captions=captions)
    index = write_index_page(
        project_root, out_dir, notebook_pages, post_pages, captions=captions
    )
    logger.info("site written to %s", out_dir)
    return index


def export_notebooks(notebooks: Sequence[Path], pages_dir: Path) -> list[Path]:
    """Export notebooks to HTML pages without code input, one page per notebook.

    Each labelled cell gets an element whose ``id`` is its label, so that
    ``page.html#label`` opens at the embedded output.

    Returns:
        The written pages in notebook order.
    """
    pages_dir.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True
    )
    pages = []
    for notebook_path in notebooks:
        notebook = add_label_anchors(nbformat.read(notebook_path, as_version=4))
        body, _ = exporter.from_notebook_node(
            notebook, resources={"metadata": {"name": notebook_path.stem}}
        )
        page = pages_dir / f"{notebook_path.stem}.html"
        page.write_text(body, encoding="utf-8")
        logger.info("exported %s to %s", notebook_path.name, page)
        pages.append(page)
    return pages


def collect_captions(notebooks: Sequence[Path]) -> dict[tuple[str, str], str]:
    """Return the ``fig-cap`` or ``tbl-cap`` of labelled cells by stem and label."""
    captions = {}
    for notebook_path in notebooks:
        for label, options in read_cell_labels(notebook_path).items():
            caption = options.get("fig-cap") or options.get("tbl-cap")
            if caption:
                captions[(notebook_path.stem, label)] = str(caption)
    return captions


def add_label_anchors(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return a copy of a notebook with an anchor cell before each labelled cell.

    The anchor is a Markdown cell containing ``<a id="label">`` and the cell's
    ``fig-cap`` or ``tbl-cap`` caption when it has one.
    """
    anchored = copy.deepcopy(notebook)
    cells = []
    for cell in anchored.cells:
        options = parse_cell_options(cell.source) if cell.cell_type == "code" else {}
        label = options.get("label")
        if isinstance(label, str) and label:
            caption = options.get("fig-cap") or options.get("tbl-cap") or ""
            anchor = f'<a id="{html.escape(label)}"></a>\n\n'
            if caption:
                anchor += f"*{caption}*"
            anchor_cell = nbformat.v4.new_markdown_cell(anchor)
            # A fixed id keeps the exported page byte-identical between builds.
            anchor_cell.id = f"anchor-{CELL_ID_INVALID.sub('-', label)}"[:64]
            cells.append(anchor_cell)
        cells.append(cell)
    anchored.cells = cells
    return anchored


def write_post_pages(
    project_root: Path, out_dir: Path, *, captions: dict[tuple[str, str], str]
) -> list[tuple[str, Path]]:
    """Convert every post under ``reports/posts`` to an HTML page in ``posts/``.

    Returns:
        ``(title, page)`` pairs sorted by date, newest first, then by file name.
    """
    posts_source = project_root / "reports" / "posts"
    posts = []
    for source in sorted(posts_source.glob("*.qmd")):
        front_matter = read_front_matter(source)
        if "listing" in front_matter:
            continue
        page = out_dir / "posts" / f"{source.stem}.html"
        title = write_converted_page(source, page, out_dir=out_dir, captions=captions)
        posts.append((str(front_matter.get("date", "")), title, page))
    posts.sort(key=lambda post: (post[0], post[2].name), reverse=True)
    return [(title, page) for _, title, page in posts]


def write_index_page(
    project_root: Path,
    out_dir: Path,
    notebook_pages: Sequence[Path],
    post_pages: Sequence[tuple[str, Path]],
    *,
    captions: dict[tuple[str, str], str],
) -> Path:
    """Write ``index.html``: the case study, then links to posts and notebook pages."""
    index = out_dir / "index.html"
    extra = ["<h2>Posts</h2>", link_list(post_pages, base=out_dir)]
    notebook_links = [(page.stem, page) for page in notebook_pages]
    extra += ["<h2>Executed notebooks</h2>", link_list(notebook_links, base=out_dir)]
    write_converted_page(
        project_root / CASE_STUDY_PAGE,
        index,
        out_dir=out_dir,
        captions=captions,
        extra_html=extra,
    )
    return index


def link_list(entries: Sequence[tuple[str, Path]], *, base: Path) -> str:
    """Return an HTML list of links to ``(text, page)`` entries from folder ``base``."""
    items = [
        f'<li><a href="{html.escape(relative_href(page, base))}">'
        f"{html.escape(text)}</a></li>"
        for text, page in entries
    ]
    return "<ul>\n" + "\n".join(items) + "\n</ul>"


def write_converted_page(
    source: Path,
    page: Path,
    *,
    out_dir: Path,
    captions: dict[tuple[str, str], str],
    extra_html: Sequence[str] = (),
) -> str:
    """Convert one Quarto page to a standalone HTML page.

    Args:
        source: ``.qmd`` page.
        page: HTML file to write.
        out_dir: Site folder; notebook pages live in its ``notebooks/`` folder.
        captions: Captions of labelled cells by notebook stem and label, used as
            link text in place of embeds.
        extra_html: HTML fragments appended after the converted body.

    Returns:
        The page title, taken from the front matter or else the file name.
    """
    front_matter = read_front_matter(source)
    title = str(front_matter.get("title") or source.stem)
    markdown = FRONT_MATTER_PATTERN.sub("", source.read_text(encoding="utf-8"), count=1)
    root_href = site_root_href(out_dir, page)
    markdown = replace_embeds(markdown, root_href=root_href, captions=captions)
    markdown = FENCED_DIV_PATTERN.sub("", markdown)
    body = MarkdownIt("commonmark").enable("table").render(markdown)
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(render_html_page(title, body, extra_html), encoding="utf-8")
    return title


def replace_embeds(
    markdown: str, *, root_href: str, captions: dict[tuple[str, str], str]
) -> str:
    """Replace each embed shortcode with a Markdown link to its notebook page.

    Args:
        markdown: Page source.
        root_href: Relative href from the page's folder to the site root, ending
            in ``/`` or empty.
        captions: Link text by notebook stem and label; missing entries get
            ``"<label> in <notebook>"``.
    """

    def to_link(match: re.Match[str]) -> str:
        notebook_ref, _, label = match.group("target").partition("#")
        stem = Path(notebook_ref).stem
        href = f"{root_href}{NOTEBOOK_PAGES_DIR}/{stem}.html"
        text = captions.get((stem, label)) or (f"{label} in {stem}" if label else stem)
        text = text.replace("[", r"\[").replace("]", r"\]")
        return f"[{text}]({href}#{label})" if label else f"[{text}]({href})"

    return EMBED_PATTERN.sub(to_link, markdown)


def relative_href(target: Path, base: Path) -> str:
    """Return the href of file ``target`` from a page in folder ``base``."""
    return Path(os.path.relpath(target, base)).as_posix()


def site_root_href(out_dir: Path, page: Path) -> str:
    """Return the href prefix from ``page`` to the site root, ``""`` or ``"../"``."""
    relative = Path(os.path.relpath(out_dir, page.parent)).as_posix()
    return "" if relative == "." else f"{relative}/"


def render_html_page(title: str, body: str, extra_html: Sequence[str]) -> str:
    """Wrap an HTML body in a minimal standalone page."""
    escaped_title = html.escape(title)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{escaped_title}</title>",
        "</head>",
        "<body>",
        f"<h1>{escaped_title}</h1>",
        body,
        *extra_html,
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)

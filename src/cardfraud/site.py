"""Check and build the Quarto case-study site.

The site is a Quarto website project (``_quarto.yml`` at the project root) whose pages
embed labelled output cells of the executed stage notebooks with the
``{{< embed path.ipynb#label >}}`` shortcode. Quarto is not installable everywhere, so
this module also checks the project without Quarto (pages, listings and embeds all
resolve) and builds a plain fallback site with nbconvert when ``quarto`` is not on
PATH. The fallback site inlines the embedded outputs, writes the blog listing and
repeats the ``website.navbar`` links on every page.

Run ``cardfraud site check`` or ``cardfraud site build``.
"""

from __future__ import annotations

import base64
import copy
import datetime
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
REPORTS_DIR = Path("reports")
CASE_STUDY_PAGE = REPORTS_DIR / "index.qmd"
POSTS_DIR = REPORTS_DIR / "posts"
EXECUTED_DIR = REPORTS_DIR / "executed"
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

# Embedded outputs are rendered after the Markdown conversion, so each embed first
# becomes a placeholder word that Markdown leaves as it is.
EMBED_PLACEHOLDER = "CARDFRAUDEMBED{index}END"
EMBED_PLACEHOLDER_PATTERN = re.compile(
    r"<p>CARDFRAUDEMBED(?P<block>\d+)END</p>|CARDFRAUDEMBED(?P<inline>\d+)END"
)
BODY_TAG_PATTERN = re.compile(r"<body\b[^>]*>")
# Image MIME types that embeds show as <img>, in order of preference.
IMAGE_MIME_TYPES = ("image/png", "image/jpeg", "image/svg+xml")
PAGE_STYLE = (
    "body{font-family:sans-serif;max-width:60rem;margin:0 auto;padding:0 1rem}"
    "figure.embed{margin:1.5rem 0}figure.embed img{max-width:100%;height:auto}"
    "figcaption{font-style:italic}.embed-source{font-style:normal}"
)
NAVBAR_STYLE = (
    "display:flex;gap:1.5rem;align-items:center;padding:0.5rem 1rem;"
    "border-bottom:1px solid #ccc;font-family:sans-serif"
)
NAVBAR_LIST_STYLE = "display:flex;gap:1rem;list-style:none;margin:0;padding:0"


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
    return {
        label: parse_cell_options(cell.source)
        for label, cell in find_labelled_cells(notebook).items()
    }


def find_labelled_cells(
    notebook: nbformat.NotebookNode,
) -> dict[str, nbformat.NotebookNode]:
    """Return the code cells of a notebook that have a ``#| label:`` option.

    Returns:
        Cells keyed by their label, in cell order. A repeated label keeps its last
        cell.
    """
    labelled = {}
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        label = parse_cell_options(cell.source).get("label")
        if isinstance(label, str) and label:
            labelled[label] = cell
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


@dataclass(frozen=True)
class NavbarLink:
    """One navbar entry of the fallback site.

    Attributes:
        text: Link text.
        target: Output page that the link opens, or an external or absolute href
            kept as ``_quarto.yml`` writes it.
    """

    text: str
    target: Path | str


@dataclass(frozen=True)
class FallbackSite:
    """Inputs shared by every page of the nbconvert fallback site.

    Attributes:
        out_dir: Folder that receives the site.
        title: ``website.title``, shown at the start of the navbar; may be empty.
        navbar: Navbar links, ``left`` items then ``right`` items.
        cells: Labelled code cells of the executed notebooks, keyed by notebook
            stem and label.
    """

    out_dir: Path
    title: str
    navbar: tuple[NavbarLink, ...]
    cells: dict[tuple[str, str], nbformat.NotebookNode]


@dataclass(frozen=True)
class Post:
    """A blog post of the fallback site with the front matter fields it lists.

    Attributes:
        source: ``.qmd`` file relative to the project root.
        page: Written HTML page.
        title: ``title`` from the front matter, else the file stem.
        date: ``date`` as ``YYYY-MM-DD`` when YAML parses it as a date, else the
            text as written; empty when missing.
        description: ``description`` from the front matter; may be empty.
    """

    source: Path
    page: Path
    title: str
    date: str
    description: str


def build_fallback_site(
    project_root: Path, out_dir: Path, *, executed_dir: Path
) -> Path:
    """Build a plain HTML site from the executed notebooks and the Quarto pages.

    The site contains ``index.html`` (the case study), ``posts/`` (each post and
    the blog listing) and ``notebooks/`` (each executed notebook without code
    input and without stderr output). Each embed shortcode is replaced by the
    embedded cell's outputs and a link to the cell on its notebook page. Every
    page starts with the ``website.navbar`` links.

    Args:
        project_root: Folder that contains ``_quarto.yml`` and ``reports/``.
        out_dir: Folder that receives the site.
        executed_dir: Folder of executed ``.ipynb`` files.

    Returns:
        The site's ``index.html``.

    Raises:
        FileNotFoundError: When ``executed_dir`` contains no notebook.
        ValueError: When an embed names a notebook or label that ``executed_dir``
            does not contain.
    """
    notebooks = find_executed_notebooks(executed_dir)
    config = load_quarto_config(project_root)
    pages = map_fallback_pages(project_root, out_dir)
    require_embedded_cells(project_root, pages, executed_dir=executed_dir)
    site = FallbackSite(
        out_dir=out_dir,
        title=str((config.get("website") or {}).get("title") or ""),
        navbar=read_navbar(config, project_root=project_root, pages=pages),
        cells=collect_labelled_cells(notebooks),
    )

    logger.info(
        "quarto not used: exporting %d notebooks with nbconvert", len(notebooks)
    )
    notebook_pages = export_notebooks(notebooks, site=site)
    posts = write_post_pages(project_root, pages, site=site)
    write_listing_pages(project_root, pages, posts, site=site)
    index = write_index_page(project_root, notebook_pages, posts, site=site)
    logger.info("site written to %s", out_dir)
    return index


def find_executed_notebooks(executed_dir: Path) -> list[Path]:
    """Return the ``.ipynb`` files of a folder, sorted by name.

    Raises:
        FileNotFoundError: When the folder contains no notebook.
    """
    notebooks = sorted(Path(executed_dir).glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(
            f"no executed notebook in {executed_dir}: run the pipeline or the smoke "
            "notebooks first"
        )
    return notebooks


def map_fallback_pages(project_root: Path, out_dir: Path) -> dict[Path, Path]:
    """Map each page that the fallback builds to its HTML file.

    The case study ``reports/index.qmd`` becomes ``index.html``, and each
    ``reports/posts/*.qmd`` page becomes ``posts/<stem>.html``.

    Returns:
        HTML files keyed by page path relative to the project root.
    """
    posts = sorted(
        path.relative_to(project_root)
        for path in (project_root / POSTS_DIR).glob("*.qmd")
    )
    return {
        source: out_dir / source.relative_to(REPORTS_DIR).with_suffix(".html")
        for source in [CASE_STUDY_PAGE, *posts]
    }


def require_embedded_cells(
    project_root: Path, pages: Iterable[Path], *, executed_dir: Path
) -> None:
    """Check that every embed of the pages names an existing notebook and label.

    Args:
        project_root: Project folder.
        pages: Page paths relative to the project root.
        executed_dir: Folder of executed notebooks, looked up by file name.

    Raises:
        ValueError: When an embed does not resolve, with one sentence per embed.
    """
    embeds = []
    for page in pages:
        text = (project_root / page).read_text(encoding="utf-8")
        embeds.extend(parse_embeds(text, page=page))
    problems = check_embeds(project_root, embeds, executed_dir)
    if problems:
        raise ValueError(
            f"{len(problems)} embeds not found in {executed_dir}: " + " ".join(problems)
        )


def collect_labelled_cells(
    notebooks: Sequence[Path],
) -> dict[tuple[str, str], nbformat.NotebookNode]:
    """Return the labelled code cells of notebooks keyed by notebook stem and label."""
    cells = {}
    for notebook_path in notebooks:
        notebook = nbformat.read(notebook_path, as_version=4)
        for label, cell in find_labelled_cells(notebook).items():
            cells[(notebook_path.stem, label)] = cell
    return cells


def read_navbar(
    config: dict[str, Any], *, project_root: Path, pages: dict[Path, Path]
) -> tuple[NavbarLink, ...]:
    """Read the ``website.navbar`` links that the fallback site can show.

    Menu entries are listed flat. A link to a page that the fallback does not
    build is left out with a warning, so every navbar link resolves.

    Args:
        config: Parsed ``_quarto.yml``.
        project_root: Project folder, to read page titles for links without text.
        pages: HTML files of the built pages, keyed by page path relative to the
            project root.

    Returns:
        The links, ``left`` items then ``right`` items.
    """
    navbar = (config.get("website") or {}).get("navbar") or {}
    links: list[NavbarLink] = []
    for side in ("left", "right"):
        links += read_navbar_items(
            navbar.get(side) or [], project_root=project_root, pages=pages
        )
    return tuple(links)


def read_navbar_items(
    items: Iterable[Any], *, project_root: Path, pages: dict[Path, Path]
) -> list[NavbarLink]:
    """Convert navbar items, strings or mappings with ``href``/``file``, to links."""
    links: list[NavbarLink] = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("menu"), list):
            links += read_navbar_items(
                item["menu"], project_root=project_root, pages=pages
            )
            continue
        if isinstance(item, str):
            href, text = item, None
        elif isinstance(item, dict):
            href, text = item.get("href") or item.get("file"), item.get("text")
        else:
            continue
        if not isinstance(href, str):
            continue
        link = resolve_navbar_link(
            href, text=text, project_root=project_root, pages=pages
        )
        if link is not None:
            links.append(link)
    return links


def resolve_navbar_link(
    href: str, *, text: Any, project_root: Path, pages: dict[Path, Path]
) -> NavbarLink | None:
    """Return the link for one navbar href, or None when its page is not built.

    The fragment of a local href is dropped, because the fallback pages do not
    have the anchors that Quarto generates.
    """
    if EXTERNAL_HREF_PATTERN.match(href):
        return NavbarLink(text=str(text or href), target=href)
    source = Path(os.path.normpath(href.split("#", 1)[0]))
    page = pages.get(source)
    if page is None:
        logger.warning(
            "navbar link %r left out: the nbconvert site builds only %s",
            href,
            ", ".join(path.as_posix() for path in pages),
        )
        return None
    if not text and (project_root / source).is_file():
        text = read_front_matter(project_root / source).get("title")
    return NavbarLink(text=str(text or source.stem), target=page)


def render_navbar(site: FallbackSite, *, page: Path) -> str:
    """Return the navbar HTML of one page, with hrefs relative to its folder."""
    base = page.parent
    parts = [f'<nav class="site-navbar" style="{NAVBAR_STYLE}">']
    if site.title:
        home = relative_href(site.out_dir / "index.html", base)
        parts.append(
            f'<a class="site-title" href="{html.escape(home)}">'
            f"<strong>{html.escape(site.title)}</strong></a>"
        )
    parts.append(f'<ul style="{NAVBAR_LIST_STYLE}">')
    for link in site.navbar:
        if isinstance(link.target, str):
            href = link.target
        else:
            href = relative_href(link.target, base)
        parts.append(
            f'<li><a href="{html.escape(href)}">{html.escape(link.text)}</a></li>'
        )
    parts += ["</ul>", "</nav>"]
    return "\n".join(parts)


def export_notebooks(notebooks: Sequence[Path], *, site: FallbackSite) -> list[Path]:
    """Export notebooks to HTML pages in ``notebooks/``, one page per notebook.

    Pages show no code input and no stderr output (warnings, progress bars). Each
    labelled cell gets an element whose ``id`` is its label, so that
    ``page.html#label`` opens at the embedded output, and each page starts with
    the navbar.

    Returns:
        The written pages in notebook order.
    """
    pages_dir = site.out_dir / NOTEBOOK_PAGES_DIR
    pages_dir.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True
    )
    pages = []
    for notebook_path in notebooks:
        notebook = nbformat.read(notebook_path, as_version=4)
        notebook = add_label_anchors(remove_stderr_outputs(notebook))
        body, _ = exporter.from_notebook_node(
            notebook, resources={"metadata": {"name": notebook_path.stem}}
        )
        page = pages_dir / f"{notebook_path.stem}.html"
        page.write_text(
            insert_navbar(body, render_navbar(site, page=page)), encoding="utf-8"
        )
        logger.info("exported %s to %s", notebook_path.name, page)
        pages.append(page)
    return pages


def remove_stderr_outputs(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return a copy of a notebook without the stream outputs written to stderr."""
    cleaned = copy.deepcopy(notebook)
    for cell in cleaned.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = [
            output
            for output in cell.outputs
            if not (output.output_type == "stream" and output.get("name") == "stderr")
        ]
    return cleaned


def insert_navbar(document: str, navbar: str) -> str:
    """Insert navbar HTML right after the ``<body>`` tag of an HTML document.

    Raises:
        ValueError: When the document has no ``<body>`` tag.
    """
    match = BODY_TAG_PATTERN.search(document)
    if match is None:
        raise ValueError(
            "the exported notebook page has no <body> tag for the navbar: export "
            "with the default nbconvert HTML template"
        )
    return f"{document[: match.end()]}\n{navbar}{document[match.end() :]}"


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
    project_root: Path, pages: dict[Path, Path], *, site: FallbackSite
) -> list[Post]:
    """Convert every post under ``reports/posts`` to its HTML page.

    Pages with a ``listing`` in their front matter are listing pages, not posts.

    Returns:
        The posts sorted by date, newest first, then by file name. Dates that are
        not ``YYYY-MM-DD`` sort as text.
    """
    posts = []
    for source, page in pages.items():
        front_matter = read_front_matter(project_root / source)
        if source.parent != POSTS_DIR or "listing" in front_matter:
            continue
        title = write_converted_page(project_root / source, page, site=site)
        post = Post(
            source=source,
            page=page,
            title=title,
            date=format_date(front_matter.get("date")),
            description=str(front_matter.get("description") or ""),
        )
        posts.append(post)
    posts.sort(key=lambda post: (post.date, post.page.name), reverse=True)
    return posts


def format_date(value: Any) -> str:
    """Return a front matter date as ``YYYY-MM-DD``, other values as text."""
    if isinstance(value, datetime.datetime):
        return value.date().isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    return "" if value is None else str(value)


def write_listing_pages(
    project_root: Path,
    pages: dict[Path, Path],
    posts: Sequence[Post],
    *,
    site: FallbackSite,
) -> list[Path]:
    """Write each listing page under ``reports/posts``: its text, then its posts.

    NOTE: the listing's ``sort``, ``type`` and ``fields`` options are not read.
    Every listing shows title, date and description, newest first.

    Args:
        project_root: Project folder.
        pages: HTML files of the built pages, keyed by page path relative to the
            project root.
        posts: Written posts, newest first.
        site: Shared inputs of the site's pages.

    Returns:
        The written listing pages.
    """
    written = []
    for source, page in pages.items():
        front_matter = read_front_matter(project_root / source)
        if source.parent != POSTS_DIR or "listing" not in front_matter:
            continue
        listed = select_listed_posts(project_root, source, front_matter, posts)
        post_list = render_post_list(listed, base=page.parent)
        write_converted_page(
            project_root / source, page, site=site, extra_html=[post_list]
        )
        logger.info("listed %d posts in %s", len(listed), page)
        written.append(page)
    return written


def select_listed_posts(
    project_root: Path,
    listing_page: Path,
    front_matter: dict[str, Any],
    posts: Sequence[Post],
) -> list[Post]:
    """Return the posts that a listing's ``contents`` select, in the given order.

    A listing without ``contents`` selects the posts in its page's folder, as
    Quarto does.
    """
    all_contents = list(iter_listing_contents(front_matter))
    if not all_contents:
        return [post for post in posts if post.source.parent == listing_page.parent]
    selected: set[Path] = set()
    for contents in all_contents:
        matches = match_listing_contents(project_root, listing_page, contents)
        selected.update(listing_page.parent / path for path in matches)
    return [post for post in posts if post.source in selected]


def render_post_list(posts: Sequence[Post], *, base: Path) -> str:
    """Return an HTML list of posts with title, date and description.

    Args:
        posts: Posts in display order.
        base: Folder of the page that shows the list; hrefs are relative to it.
    """
    items = []
    for post in posts:
        href = html.escape(relative_href(post.page, base))
        entry = [f'<li class="post"><a href="{href}">{html.escape(post.title)}</a>']
        if post.date:
            date = html.escape(post.date)
            entry.append(f' <time datetime="{date}">{date}</time>')
        if post.description:
            entry.append(f"<p>{html.escape(post.description)}</p>")
        entry.append("</li>")
        items.append("".join(entry))
    return '<ul class="post-listing">\n' + "\n".join(items) + "\n</ul>"


def write_index_page(
    project_root: Path,
    notebook_pages: Sequence[Path],
    posts: Sequence[Post],
    *,
    site: FallbackSite,
) -> Path:
    """Write ``index.html``: the case study, then links to posts and notebook pages."""
    index = site.out_dir / "index.html"
    post_links = [(post.title, post.page) for post in posts]
    notebook_links = [(page.stem, page) for page in notebook_pages]
    extra = [
        "<h2>Posts</h2>",
        link_list(post_links, base=site.out_dir),
        "<h2>Executed notebooks</h2>",
        link_list(notebook_links, base=site.out_dir),
    ]
    write_converted_page(
        project_root / CASE_STUDY_PAGE, index, site=site, extra_html=extra
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
    site: FallbackSite,
    extra_html: Sequence[str] = (),
) -> str:
    """Convert one Quarto page to a standalone HTML page with the embeds inlined.

    Args:
        source: ``.qmd`` page.
        page: HTML file to write.
        site: Shared inputs of the site's pages.
        extra_html: HTML fragments appended after the converted body.

    Returns:
        The page title, taken from the front matter or else the file name.
    """
    front_matter = read_front_matter(source)
    title = str(front_matter.get("title") or source.stem)
    markdown = FRONT_MATTER_PATTERN.sub("", source.read_text(encoding="utf-8"), count=1)
    markdown, embeds_html = replace_embeds(
        markdown, root_href=site_root_href(site.out_dir, page), cells=site.cells
    )
    markdown = FENCED_DIV_PATTERN.sub("", markdown)
    body = MarkdownIt("commonmark").enable("table").render(markdown)
    body = insert_embeds(body, embeds_html)
    description = str(front_matter.get("description") or "")
    if description:
        body = f'<p class="description">{html.escape(description)}</p>\n{body}'

    document = render_html_page(
        title,
        body,
        navbar=render_navbar(site, page=page),
        extra_html=extra_html,
    )
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(document, encoding="utf-8")
    return title


def replace_embeds(
    markdown: str,
    *,
    root_href: str,
    cells: dict[tuple[str, str], nbformat.NotebookNode],
) -> tuple[str, list[str]]:
    """Replace each embed shortcode with a placeholder and render its HTML.

    Args:
        markdown: Page source.
        root_href: Relative href from the page's folder to the site root, ending
            in ``/`` or empty.
        cells: Labelled code cells by notebook stem and label.

    Returns:
        The Markdown with numbered placeholders, and the HTML of each embed in
        placeholder order, for :func:`insert_embeds` after the Markdown conversion.

    Raises:
        KeyError: When a labelled embed has no cell in ``cells``.
    """
    embeds_html: list[str] = []
    figure_ids: set[str] = set()

    def to_placeholder(match: re.Match[str]) -> str:
        notebook_ref, _, label = match.group("target").partition("#")
        stem = Path(notebook_ref).stem
        href = f"{root_href}{NOTEBOOK_PAGES_DIR}/{stem}.html"
        if label:
            figure_id = None if label in figure_ids else label
            figure_ids.add(label)
            embed_html = render_embed(
                cells[(stem, label)],
                label=label,
                source_text=f"from {stem}",
                source_href=f"{href}#{label}",
                figure_id=figure_id,
            )
        else:
            # A whole-notebook embed is shown as a link to the notebook page.
            embed_html = f'<p><a href="{html.escape(href)}">{html.escape(stem)}</a></p>'
        embeds_html.append(embed_html)
        return EMBED_PLACEHOLDER.format(index=len(embeds_html) - 1)

    return EMBED_PATTERN.sub(to_placeholder, markdown), embeds_html


def insert_embeds(body: str, embeds_html: Sequence[str]) -> str:
    """Replace the placeholders of :func:`replace_embeds` in rendered HTML.

    A placeholder that Markdown wrapped in its own paragraph is replaced together
    with the ``<p>`` tags.
    """

    def to_html(match: re.Match[str]) -> str:
        index = match.group("block") or match.group("inline")
        return embeds_html[int(index)]

    return EMBED_PLACEHOLDER_PATTERN.sub(to_html, body)


def render_embed(
    cell: nbformat.NotebookNode,
    *,
    label: str,
    source_text: str,
    source_href: str,
    figure_id: str | None,
) -> str:
    """Render the outputs of one embedded cell as an HTML ``<figure>``.

    The caption is the cell's ``fig-cap`` or ``tbl-cap`` option followed by a link
    to the cell on its notebook page. Tables (labels starting with ``tbl-``) have
    the caption above, as Quarto places it, and figures below. Images use the
    ``fig-alt`` option, else the caption, else the label, as alt text.

    Args:
        cell: Labelled code cell of an executed notebook.
        label: The cell's label.
        source_text: Text of the link to the notebook page.
        source_href: Href of the cell's anchor on its notebook page.
        figure_id: ``id`` of the figure element, None for none.
    """
    options = parse_cell_options(cell.source)
    caption = str(options.get("fig-cap") or options.get("tbl-cap") or "")
    alt = str(options.get("fig-alt") or caption or label)
    outputs = [render_output(output, alt=alt) for output in cell.get("outputs", [])]
    contents = [output for output in outputs if output is not None]
    if not contents:
        logger.warning("embedded cell %s has no output to show", label)

    link = (
        f'<a class="embed-source" href="{html.escape(source_href)}">'
        f"{html.escape(source_text)}</a>"
    )
    caption_html = MarkdownIt("commonmark").renderInline(caption) if caption else ""
    figcaption = f"<figcaption>{caption_html} <small>{link}</small></figcaption>"
    id_attribute = f' id="{html.escape(figure_id)}"' if figure_id else ""
    parts = [f'<figure class="embed"{id_attribute}>']
    if label.startswith("tbl-"):
        parts += [figcaption, *contents]
    else:
        parts += [*contents, figcaption]
    parts.append("</figure>")
    return "\n".join(parts)


def render_output(output: nbformat.NotebookNode, *, alt: str) -> str | None:
    """Render one notebook output as HTML, using its richest MIME type.

    Images become ``<img>`` elements with a data URI, ``text/html`` (pandas tables)
    is kept as it is, ``text/markdown`` is converted, and ``text/plain`` becomes a
    ``<pre>`` block. Errors show their name and value.

    Args:
        output: One entry of a code cell's ``outputs``.
        alt: Alt text of an image output.

    Returns:
        The HTML, or None for stream outputs (stdout and stderr) and outputs
        without a MIME type that pages can show.
    """
    if output.output_type == "stream":
        return None
    if output.output_type == "error":
        error_text = f"{output.get('ename', '')}: {output.get('evalue', '')}"
        return f"<pre>{html.escape(error_text)}</pre>"
    data = output.get("data") or {}
    for mime_type in IMAGE_MIME_TYPES:
        if mime_type in data:
            return render_image(mime_type, join_mime_text(data[mime_type]), alt=alt)
    if "text/html" in data:
        return join_mime_text(data["text/html"])
    if "text/markdown" in data:
        return MarkdownIt("commonmark").render(join_mime_text(data["text/markdown"]))
    if "text/plain" in data:
        return f"<pre>{html.escape(join_mime_text(data['text/plain']))}</pre>"
    return None


def join_mime_text(value: Any) -> str:
    """Join an output's MIME value into one string, also when stored as lines."""
    return "".join(value) if isinstance(value, list) else str(value)


def render_image(mime_type: str, value: str, *, alt: str) -> str:
    """Return an ``<img>`` element whose data URI contains the image.

    Args:
        mime_type: ``image/png`` or ``image/jpeg`` with base64 data, or
            ``image/svg+xml`` with SVG text.
        value: The output's data for that MIME type.
        alt: Alt text.
    """
    if mime_type == "image/svg+xml":
        payload = base64.b64encode(value.encode("utf-8")).decode("ascii")
    else:
        payload = "".join(value.split())
    return f'<img src="data:{mime_type};base64,{payload}" alt="{html.escape(alt)}">'


def relative_href(target: Path, base: Path) -> str:
    """Return the href of file ``target`` from a page in folder ``base``."""
    return Path(os.path.relpath(target, base)).as_posix()


def site_root_href(out_dir: Path, page: Path) -> str:
    """Return the href prefix from ``page`` to the site root, ``""`` or ``"../"``."""
    relative = Path(os.path.relpath(out_dir, page.parent)).as_posix()
    return "" if relative == "." else f"{relative}/"


def render_html_page(
    title: str, body: str, *, navbar: str, extra_html: Sequence[str] = ()
) -> str:
    """Wrap an HTML body in a minimal standalone page that starts with the navbar."""
    escaped_title = html.escape(title)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{escaped_title}</title>",
        f"<style>{PAGE_STYLE}</style>",
        "</head>",
        "<body>",
        navbar,
        "<main>",
        f"<h1>{escaped_title}</h1>",
        body,
        *extra_html,
        "</main>",
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)

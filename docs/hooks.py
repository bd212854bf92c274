"""MkDocs hooks of the sntkit site: pages that pull repository files in at build time.

The README, REPRODUCTION.md, benchmarks/RESULTS.md, DEVELOPING.md, CHANGELOG.md and examples/
stay the single source; pages include them (or one section of them) with directives that this
hook expands before Markdown is rendered:

* ``<!-- include: PATH -->`` — the whole file (Markdown, or a code block for other files);
* ``<!-- include: PATH#Heading prefix -->`` — the section under the first heading that starts
  with the prefix, up to the next heading of the same or a higher level (heading excluded);
* ``<!-- examples -->`` — every ``examples/*.py``: its docstring as text, its code as a block;
* ``<!-- cli-reference -->`` — the ``--help`` text of ``sntkit`` and of every subcommand, taken
  from the argparse parser (:func:`sntkit.cli.main.build_parser`).

Links in included files are written relative to the repository; they are rewritten to the
site's pages (:data:`PAGES`) or, for files that are not pages, shown as code.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: repository files that are pages of the site
PAGES = {
    "README.md": "index.md",
    "REPRODUCTION.md": "reproductions.md",
    "benchmarks/RESULTS.md": "benchmarks.md",
    "DEVELOPING.md": "developing.md",
    "CHANGELOG.md": "changelog.md",
}

_DIRECTIVE = re.compile(
    r"^<!-- (include: (?P<path>[^#>]+?)(#(?P<section>[^>]+?))?|examples|cli-reference) -->$", re.M
)
_LINK = re.compile(r"(?P<bang>!?)\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)\)")
_HEADING = re.compile(r"^(#{1,6}) +(.*)$")


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Expand the directives of a page (MkDocs hook; ``config`` and ``files`` unused)."""
    page_dir = posixpath.dirname(page.file.src_uri)
    return _DIRECTIVE.sub(lambda m: _expand(m, page_dir), markdown)


def _expand(match: re.Match, page_dir: str) -> str:
    if match.group(0) == "<!-- examples -->":
        return _examples(page_dir)
    if match.group(0) == "<!-- cli-reference -->":
        return _cli_reference()
    path = match.group("path").strip()
    text = _read(path)
    if not path.endswith(".md"):
        return f"```{_language(path)}\n{text.rstrip()}\n```\n"
    if match.group("section"):
        text = _section(text, match.group("section").strip(), path)
    return _rewrite_links(text, posixpath.dirname(path), page_dir)


def _read(path: str) -> str:
    file = ROOT / path
    if not file.is_file():
        raise FileNotFoundError(f"docs include: {path} does not exist in the repository")
    return file.read_text(encoding="utf-8")


def _language(path: str) -> str:
    return {".py": "python", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml"}.get(
        Path(path).suffix, "text"
    )


def _section(text: str, prefix: str, path: str) -> str:
    lines, out, level = text.splitlines(), None, 0
    for line in lines:
        heading = _HEADING.match(line)
        if out is None:
            if heading and heading.group(2).startswith(prefix):
                out, level = [], len(heading.group(1))
            continue
        if heading and len(heading.group(1)) <= level:
            break
        out.append(line)
    if out is None:
        raise ValueError(f"docs include: {path} has no heading starting with {prefix!r}")
    return "\n".join(out).strip() + "\n"


def _rewrite_links(text: str, src_dir: str, page_dir: str) -> str:
    """Links relative to the included file → links relative to the page (or code text)."""

    def fix(m: re.Match) -> str:
        target = m.group("target")
        if re.match(r"^[a-z]+:|^#|^/", target):
            return m.group(0)
        path, _, anchor = target.partition("#")
        repo_path = posixpath.normpath(posixpath.join(src_dir, path))
        if repo_path in PAGES:
            docs_path = PAGES[repo_path]
        elif repo_path.startswith("docs/") and (ROOT / repo_path).exists():
            docs_path = repo_path.removeprefix("docs/")
        else:  # not part of the site: name the file instead of linking to it
            return f"{m.group('text')} (`{repo_path}`)" if not m.group("bang") else m.group(0)
        rel = posixpath.relpath(docs_path, page_dir or ".")
        return f"{m.group('bang')}[{m.group('text')}]({rel}{'#' + anchor if anchor else ''})"

    return _LINK.sub(fix, text)


def _examples(page_dir: str) -> str:
    import ast

    parts = []
    for file in sorted((ROOT / "examples").glob("*.py")):
        source = file.read_text(encoding="utf-8")
        doc = ast.get_docstring(ast.parse(source)) or ""
        title, _, body = doc.partition("\n")
        rel = file.relative_to(ROOT).as_posix()
        parts.append(f"## {title.strip() or file.stem}\n\n`{rel}`\n\n{body.strip()}\n")
        parts.append(f"```python\n{source.rstrip()}\n```\n")
    return _rewrite_links("\n".join(parts), "examples", page_dir)


def _cli_reference() -> str:
    import argparse
    import os

    from sntkit.cli.main import build_parser

    os.environ["COLUMNS"] = "100"  # argparse wraps help at the terminal width
    parser = build_parser()
    blocks = [("sntkit", parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            blocks += [(f"sntkit {name}", sub) for name, sub in action.choices.items()]
    return "\n".join(
        f"## `{name}`\n\n```text\n{p.format_help().rstrip()}\n```\n" for name, p in blocks
    )

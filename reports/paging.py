"""Which users go on which page of the users report, decided before layout, so that runs of pages can be laid out in
parallel (``reports.pdf``) with their page numbers known.

Row heights come from the template's CSS (templates/reports/pdf/_base.html: the figures below are its sizes in CSS
pixels, 1pt = 4/3 px) and from the font's advance widths, which tell how many lines a wrapping cell takes. The plan
errs towards fewer rows per page: a page planned too full would overflow onto an extra page, which the renderer
detects and answers by laying out the whole document in one process. Change the CSS and these figures together; the
tests compare the plan with WeasyPrint's own layout.
"""

import functools
import logging
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

logger = logging.getLogger(__name__)

PT = 4 / 3  # CSS px per point

# A4, margins 18mm top and 16mm bottom, 14mm each side.
PAGE_HEIGHT = 841.89 * PT - (18 + 16) / 25.4 * 72 * PT
PAGE_WIDTH = 595.28 * PT - 28 / 25.4 * 72 * PT

BODY_LINE = 8.5 * 1.35 * PT  # a line of table text: 8.5pt, line-height 1.35
ROW_EXTRA = (2 + 2 + 0.4) * PT  # cell padding above and below, the row's bottom border
HEADER_ROW = 19.5 + 0.4  # the column headings, and the thicker border under them
MASTHEAD_AND_CARDS = 189.1  # first page: the masthead, the four cards, the heading, when each takes one line
TENANT_LINE = 16 * 1.35 * PT  # the tenant's name in the masthead: 16pt bold
NOTE = (6 + 7.5 * 1.35) * PT  # the closing note under the table
SLACK = 0.1  # rounding in layout; the figures above are exact to a hundredth of a pixel

BODY_SIZE = 8.5 * PT
TENANT_SIZE = 16 * PT
CELL_PADDING = 2 * 3 * PT
EMAIL_WIDTH = 0.34 * PAGE_WIDTH - CELL_PADDING  # the email and name columns wrap; the others hold short values
NAME_WIDTH = 0.24 * PAGE_WIDTH - CELL_PADDING


MISSING_EM = 1.3  # a character the font lacks comes from a fallback font: CJK 1 em, colour emoji about 1.25
FALLBACK_LINE = 0.15 * BODY_SIZE  # a fallback font's taller ascent and descent heighten its line (CJK: about 1 px)
FIT = 0.98  # a line is planned full a little early: kerning can also widen a run (DejaVu has pairs such as "AA")


class Widths:
    """Advance widths of one font, read from its file: how wide a run of text lays out, give or take kerning."""

    def __init__(self, path: str, index: int = 0) -> None:
        from fontTools.ttLib import TTFont

        font = TTFont(path, fontNumber=index, lazy=True)
        units = font["head"].unitsPerEm
        metrics = font["hmtx"].metrics
        self._em = {char: metrics[glyph][0] / units for char, glyph in font.getBestCmap().items()}

    def em(self, text: str) -> float:
        return sum(self._em.get(ord(char), MISSING_EM) for char in text)

    def covers(self, text: str) -> bool:
        """Whether the font has every character: if not, some come from a fallback font, whose lines are taller."""
        return all(ord(char) in self._em or char.isspace() for char in text)

    def lines(self, text: str, width: float, size: float) -> int:
        """Lines ``text`` takes in a box ``width`` px wide at ``size`` px, broken the way the browser breaks it: at
        spaces and after hyphens, and inside a piece too long for a line anywhere (``overflow-wrap: anywhere``)."""
        width = width * FIT / size
        space = self.em(" ")
        lines, used = 1, 0.0
        for word in text.split():
            for index, piece in enumerate(HYPHENATED.findall(word)):
                gap = space if index == 0 else 0.0
                need = self.em(piece)
                if used and used + gap + need <= width:
                    used += gap + need
                    continue
                if used:
                    lines += 1
                    used = 0.0
                if need <= width:
                    used = need
                    continue
                for char in piece:  # longer than a whole line
                    step = self._em.get(ord(char), MISSING_EM)
                    if used and used + step > width:
                        lines += 1
                        used = 0.0
                    used += step
        return lines


HYPHENATED = re.compile(r"[^-]*-|[^-]+")


@functools.cache
def _widths(family: str) -> Widths | None:
    """The metrics of the font fontconfig picks for ``family`` (WeasyPrint asks fontconfig too); None, logged once,
    when they cannot be read: then reports are laid out whole, as before planning existed."""
    try:
        found = subprocess.run(
            ["fc-match", "--format=%{file}\n%{index}", family], capture_output=True, text=True, check=True, timeout=10
        ).stdout.split("\n")
        return Widths(found[0], int(found[1] or 0) if len(found) > 1 else 0)
    except Exception as exc:  # noqa: BLE001 - no fc-match, a font collection fontTools cannot read, no cmap, ...
        logger.warning("No metrics for the font %r (%s); long reports are laid out in one process", family, exc)
        return None


def user_pages(users: Sequence[dict], *, tenant_name: str, meta: str) -> list[list[dict]] | None:
    """The users split into pages, each a list that fits on its page under the column headings; None when the font's
    metrics cannot be read (then nothing can be planned)."""
    regular, bold = _widths("DejaVu Sans"), _widths("DejaVu Sans:bold")
    if regular is None or bold is None:
        return None
    tenant_lines, meta_lines = (
        bold.lines(tenant_name, PAGE_WIDTH, TENANT_SIZE),
        regular.lines(meta, PAGE_WIDTH, BODY_SIZE),
    )
    first = MASTHEAD_AND_CARDS + TENANT_LINE * (tenant_lines - 1) + BODY_LINE * (meta_lines - 1)
    if not bold.covers(tenant_name):
        first += 0.15 * TENANT_SIZE * tenant_lines
    if not regular.covers(meta):
        first += FALLBACK_LINE * meta_lines
    room = PAGE_HEIGHT - SLACK
    pages: list[list[dict]] = []
    page: list[dict] = []
    used = first + HEADER_ROW
    for user in users:
        name = f"{user['first_name']} {user['last_name']}"
        lines = max(regular.lines(user["email"], EMAIL_WIDTH, BODY_SIZE), regular.lines(name, NAME_WIDTH, BODY_SIZE))
        line = BODY_LINE if regular.covers(user["email"]) and regular.covers(name) else BODY_LINE + FALLBACK_LINE
        height = ROW_EXTRA + line * lines
        if page and used + height > room:
            pages.append(page)
            page, used = [], HEADER_ROW
        page.append(user)
        used += height
    if used + NOTE > room and len(page) > 1:
        pages.append(page[:-1])  # the note needs the last row's room: that row starts the last page
        page = page[-1:]
    pages.append(page)
    return pages


@dataclass(frozen=True)
class Part:
    """A run of whole pages rendered as a document of its own: pages ``[start, end)`` of ``total``."""

    start: int
    end: int
    total: int

    @property
    def first(self) -> bool:
        return self.start == 0

    @property
    def last(self) -> bool:
        return self.end == self.total

    @property
    def first_page_number(self) -> int:
        return self.start + 1


def parts(page_count: int, *, processes: int, min_pages: int) -> list[Part]:
    """Split ``page_count`` pages into up to ``processes`` runs of at least ``min_pages`` pages, as even as they
    come; a single part when there is nothing to gain."""
    count = max(1, min(processes, page_count // max(1, min_pages)))
    bounds = [round(i * page_count / count) for i in range(count + 1)]
    return [Part(bounds[i], bounds[i + 1], page_count) for i in range(count)]

"""HTML to PDF bytes with WeasyPrint, in this process or split over several: no Django here, so the render processes
(forked from a server that imported only this module) start in milliseconds with WeasyPrint and the fonts loaded.

A long report is laid out as several parts at once, one per process, each part a run of whole pages of the same
document; the parts' PDFs are then joined in order. WeasyPrint lays out in pure Python on one core, so this is the
only way a 1,000-user report gets faster than WeasyPrint itself (bench/). Each part must come out with the pages it was
planned to have; the caller falls back to one process when one does not.
"""

import gc
import io
import multiprocessing
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from multiprocessing.process import AuthenticationString

_font_config = None


def font_config():
    """One FontConfiguration per process: fontconfig's scan of the system fonts is paid once, not per report."""
    global _font_config
    if _font_config is None:
        from weasyprint.text.fonts import FontConfiguration

        _font_config = FontConfiguration()
    return _font_config


def render(html: str) -> tuple[bytes, int]:
    """Lay out and write one document; return the PDF and its page count."""
    from weasyprint import HTML

    document = HTML(string=html, base_url=None).render(font_config=font_config())
    # Fonts are subset to the glyphs used (the default, and the fastest write: full fonts and uncompressed PDFs were
    # measured slower); no images, so no image options to tune.
    return document.write_pdf(), len(document.pages)


class PartFailed(Exception):
    """A render process died or raised; the caller renders the whole document itself instead."""


def render_parts(parts: list[str], *, render_here=render) -> list[tuple[bytes, int]]:
    """Render each part's HTML, the first in this process and each other one in a process of its own, all at once;
    return (PDF, page count) per part, in order.

    ``render_here`` renders the first part (the caller wraps it, say to tune the collector). Whatever happens here,
    every render process is gone when this returns or raises: a time limit that interrupts the wait kills them.
    """
    context = _context()
    children: list[tuple[multiprocessing.Process, Connection]] = []
    try:
        with _may_have_children():
            for html in parts[1:]:
                receiver, sender = context.Pipe(duplex=False)
                process = context.Process(target=_render_child, args=(sender, html), name="report-part", daemon=True)
                process.start()
                sender.close()
                children.append((process, receiver))
        results = [render_here(parts[0])]
        for process, receiver in children:
            try:
                outcome = receiver.recv()
            except EOFError:
                process.join()
                raise PartFailed(f"render process exited with {process.exitcode} before sending its part") from None
            if outcome[0] != "ok":
                raise PartFailed(f"render process failed: {outcome[1]}")
            results.append((outcome[1], outcome[2]))
        return results
    finally:
        for process, receiver in children:
            if process.is_alive():
                process.kill()
            process.join()
            receiver.close()


def join(pdfs: list[bytes]) -> bytes:
    """One PDF of the parts' pages, in order, with the first part's document information (title, producer)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    readers = [PdfReader(io.BytesIO(pdf)) for pdf in pdfs]
    for reader in readers:
        writer.append(reader)
    if readers[0].metadata:
        writer.add_metadata(readers[0].metadata)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def warm_up() -> None:
    """Start the server the render processes fork from, so the first long report does not wait for it (it imports
    WeasyPrint and scans the fonts once, in the background, ~1 s)."""
    _context()
    from multiprocessing import forkserver

    forkserver.ensure_running()


_config_lock = threading.Lock()


@contextmanager
def _may_have_children() -> Iterator[None]:
    """Let a Celery prefork pool process start render processes, as any other process can.

    Such a process is daemonic, and multiprocessing refuses children to a daemonic process (it is killed with its
    parent, and would orphan them); ``render_parts`` never leaves one behind, so the flag is lifted while they start.
    Its key is billiard's, which multiprocessing may not pickle into a new process; it lends the same bytes as
    multiprocessing's own type. Both are put back afterwards.
    """
    with _config_lock:  # a threads pool may start two reports' processes at once
        config = multiprocessing.current_process()._config  # noqa: SLF001 - no public setter for either, once started
        saved = dict(config)
        config.pop("daemon", None)
        if "authkey" in config:
            config["authkey"] = AuthenticationString(bytes(config["authkey"]))
        try:
            yield
        finally:
            config.clear()
            config.update(saved)


def _context():
    # Forked from a clean server process, not from the worker: a worker may run threads (a threads pool, the test
    # worker), and a fork taken while another thread holds a lock inside fontconfig or Pango would hang. The server
    # also imports the main script once (celery's, pytest's), which each process would otherwise import again.
    multiprocessing.set_forkserver_preload(["__main__", "reports.pdf_preload"])
    return multiprocessing.get_context("forkserver")


def _render_child(sender: Connection, html: str) -> None:
    # A short-lived process: the collector is mostly wasted walking the growing box tree (rendering.py).
    gc.set_threshold(100_000, 50, 100)
    try:
        pdf, pages = render(html)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which renders the whole document instead
        sender.send(("error", repr(exc)))
    else:
        sender.send(("ok", pdf, pages))
    finally:
        sender.close()

"""HTML to PDF bytes with WeasyPrint, in this process or split over several: no Django here, so the render processes
(forked from a server that imported only this module) start in milliseconds with WeasyPrint and the fonts loaded.

A long report is laid out as several parts at once, one per process, each part a run of whole pages of the same
document; the parts' PDFs are then joined in order. WeasyPrint lays out in pure Python on one core, so this is the
only way a 1,000-user report gets faster than WeasyPrint itself (bench/). Each part must come out with the pages it was
planned to have; the caller falls back to one process when one does not.
"""

import contextlib
import gc
import io
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from multiprocessing.process import AuthenticationString
from pathlib import Path

WAIT_SECONDS = 1.0  # how often render_parts' ``waiting`` is called while the parts are laid out
_font_config = None


def font_config():
    """One FontConfiguration per process: fontconfig's scan of the system fonts is paid once, not per report."""
    global _font_config
    if _font_config is None:
        from weasyprint.text.fonts import FontConfiguration

        _font_config = FontConfiguration()
    return _font_config


def render(html: str, *, laid_out: Callable[[int], None] | None = None) -> tuple[bytes, int]:
    """Lay out and write one document; return the PDF and its page count (``laid_out`` hears it before the write)."""
    from weasyprint import HTML

    document = HTML(string=html, base_url=None).render(font_config=font_config())
    if laid_out is not None:
        laid_out(len(document.pages))
    # Fonts are subset to the glyphs used (the default, and the fastest write: full fonts and uncompressed PDFs were
    # measured slower); no images, so no image options to tune.
    return document.write_pdf(), len(document.pages)


class PartFailed(Exception):
    """A render process died or raised; the caller renders the whole document itself instead."""


def render_parts(
    parts: list[str], *, started: Callable[[], None] | None = None, waiting: Callable[[], None] | None = None
) -> list[tuple[bytes, int]]:
    """Render each part's HTML in a process of its own, all at once; return (PDF, page count) per part, in order.

    This process only waits (``started`` is called once every part is under way, ``waiting`` about once a second
    after that, and may raise to stop them: a cancel). So Celery's soft time limit, a signal, always finds it in
    Python or in a wait it interrupts, and never inside the renderer, where a signal can be lost in a C callback
    (services.report_generate). Whatever happens, every render process is gone when this returns or raises: an
    interrupted wait kills them, and if this process is killed outright they exit too (``_render_child``).
    """
    context = _context()
    children: list[tuple[multiprocessing.Process, Connection]] = []
    try:
        for html in parts:
            # Python's fork-server start is not safe against an exception from a signal handler (the soft time
            # limit): held until this process is started and recorded, the limit then lands in the wait below.
            with _signals_held(), _may_start_processes():  # the new process copies this one's settings when made
                receiver, sender = context.Pipe(duplex=False)
                process = context.Process(target=_render_child, args=(sender, html), name="report-part", daemon=True)
                children.append((process, receiver))
                process.start()
                sender.close()
        if started is not None:
            started()
        results = []
        for process, receiver in children:
            while waiting is not None and not receiver.poll(WAIT_SECONDS):
                waiting()
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
            if process.pid is not None:
                if process.is_alive():
                    process.kill()
                process.join()
            receiver.close()


def join(pdfs: list[bytes]) -> bytes:
    """One PDF of the parts' pages, in order, with the first part's document information (title, producer) and
    language."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import NameObject

    writer = PdfWriter()
    readers = [PdfReader(io.BytesIO(pdf)) for pdf in pdfs]
    for reader in readers:
        writer.append(reader)
    if readers[0].metadata:
        writer.add_metadata(readers[0].metadata)
    if "/Lang" in readers[0].trailer["/Root"]:
        writer._root_object[NameObject("/Lang")] = readers[0].trailer["/Root"]["/Lang"]  # noqa: SLF001 - no setter
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def warm_up() -> None:
    """Start the server the render processes fork from, so the first long report does not wait for it to import
    WeasyPrint and load the fonts (it does so in the background, about a second)."""
    _context()
    _server_start()


def shut_down() -> None:
    """Stop this process's fork server and resource tracker, if it started them, and reap them: a pool process that
    exits otherwise leaves them to whatever reaps orphans (a container whose first process is Celery would not).
    Each gets two seconds to go after its pipe closes, then is killed; the temporary folder of the server's socket
    goes too (a pool process never runs multiprocessing's exit handlers)."""
    from multiprocessing import forkserver, resource_tracker

    for helper, pid_name, fd_name in (
        (forkserver._forkserver, "_forkserver_pid", "_forkserver_alive_fd"),  # noqa: SLF001 - no public stop
        (resource_tracker._resource_tracker, "_pid", "_fd"),  # noqa: SLF001
    ):
        pid, fd = getattr(helper, pid_name, None), getattr(helper, fd_name, None)
        if pid is None:
            continue
        with contextlib.suppress(OSError):
            if fd is not None:
                os.close(fd)
            deadline = time.monotonic() + 2
            while os.waitpid(pid, os.WNOHANG) == (0, 0):
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.02)
        setattr(helper, pid_name, None)
        setattr(helper, fd_name, None)
    current = multiprocessing.current_process()
    tempdir = current._config.get("tempdir")  # noqa: SLF001
    if tempdir and type(current).__module__.startswith("billiard"):  # elsewhere multiprocessing removes it at exit
        shutil.rmtree(tempdir, ignore_errors=True)


PRELOAD = "reports.pdf_preload"
PROJECT_DIR = str(Path(__file__).resolve().parent.parent)
_lock = threading.Lock()


def _context():
    # Forked from a clean server process, not from the worker: a worker may run threads (a threads pool, the test
    # worker), and a fork taken while another thread holds a lock inside fontconfig or Pango would hang.
    multiprocessing.set_forkserver_preload([PRELOAD])
    return multiprocessing.get_context("forkserver")


def _server_start() -> None:
    """Start the fork server with the project importable whatever the working directory (Python 3.11's server does
    not take the caller's sys.path), so that it preloads WeasyPrint and the fonts for every render process."""
    from multiprocessing import forkserver

    with _lock:
        if forkserver._forkserver._forkserver_pid is not None:  # noqa: SLF001
            # Started already: leave the environment alone (another thread may be reading it, in C). A server that
            # died is started again by multiprocessing, maybe without its preload: slower, not wrong.
            forkserver.ensure_running()
            return
        saved = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [PROJECT_DIR, saved]))
        try:
            forkserver.ensure_running()
        finally:
            if saved is None:
                del os.environ["PYTHONPATH"]
            else:
                os.environ["PYTHONPATH"] = saved


@contextmanager
def _may_start_processes() -> Iterator[None]:
    """Let a Celery prefork pool process start render processes, as any other process can.

    Such a process is billiard's, and daemonic: multiprocessing refuses children to a daemonic process (it is killed
    with its parent and would orphan them; ``render_parts`` never leaves one behind), and its key is billiard's type,
    which multiprocessing may not pickle into a new process. While a process starts, this one shows multiprocessing
    a copy of its settings without the flag and with the same key as multiprocessing's type. The copy is swapped in
    and out by rebinding, which an interruption (Celery's soft time limit) cannot leave half done.
    """
    _server_start()
    current = multiprocessing.current_process()
    config = current._config  # noqa: SLF001 - neither has a public setter once a process runs
    authkey = config.get("authkey")
    if not config.get("daemon") and (authkey is None or type(authkey) is AuthenticationString):
        yield
        return
    lent = {key: value for key, value in config.items() if key != "daemon"}
    if authkey is not None:
        lent["authkey"] = AuthenticationString(bytes(authkey))
    with _lock:
        current._config = lent  # noqa: SLF001
        try:
            yield
        finally:
            current._config = config  # noqa: SLF001


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold Celery's soft-limit signal (and SIGALRM) in this thread; one that arrived meanwhile lands on release."""
    held = {signal.SIGUSR1, signal.SIGALRM}
    if threading.current_thread() is not threading.main_thread():
        yield  # Python runs handlers in the main thread only
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _render_child(sender: Connection, html: str) -> None:
    # If the process that asked for this part dies (a hard time limit kills it outright), stop at once.
    threading.Thread(target=_exit_with_parent, daemon=True).start()
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


def _exit_with_parent() -> None:
    multiprocessing.connection.wait([multiprocessing.parent_process().sentinel])
    os._exit(1)

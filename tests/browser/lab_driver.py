"""Drive a real JupyterLab in headless Chromium: start a server, run a notebook, inspect what shows.

The browser suite (``test_lessons_in_browser.py``) and its negative tests share this module. It knows
three things: how to start and always stop a private JupyterLab server, how to open a notebook from
the file browser and run all its cells the way a learner does, and how to read the rendered page
cell by cell and say what is wrong in terms a lesson author can act on (lesson, cell, first line).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium")
WIDGET_MANAGER = "@jupyter-widgets/jupyterlab-manager"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

# A headless browser with nothing that phones home: this machine has no internet and CI must not wait
# on timeouts for update checks or field trials.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
]


def browser_missing() -> str | None:
    """Why the browser suite cannot run here (Chromium or Playwright missing), or None when it can."""
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"Chromium not found at {CHROMIUM} (install it: apt-get install chromium, or set COURSE_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e \".[test]\")"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LabServer:
    """A private JupyterLab server: its own port, token, folders, and process group."""

    root: Path
    home: Path
    port: int
    token: str
    process: subprocess.Popen
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lab_url(self) -> str:
        return f"{self.url}/lab?token={self.token}"

    def api(self, path: str, method: str = "GET") -> object:
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


def start_lab(
    notebooks: list[Path], workdir: Path, *, disabled_extensions: tuple[str, ...] = (), timeout: float = 120,
    env: dict[str, str] | None = None,
) -> LabServer:
    """Start JupyterLab on a copy of ``notebooks`` in ``workdir`` and wait until it answers.

    ``env`` adds variables for the server and so for its kernels (for example an empty
    ``COURSE_DATA``, to run the lessons the way a laptop without CIFAR-10 does).

    The copy keeps runs from ever touching the repository's notebooks. Settings, workspaces, runtime
    files and config live under ``workdir`` so a learner's own JupyterLab set-up cannot change what
    the suite sees, and so every kernel can be found again by its connection file when stopping.
    """
    root = workdir / "lab-root"
    home = workdir / "lab-home"
    root.mkdir(parents=True)
    for notebook in notebooks:
        shutil.copy2(notebook, root / notebook.name)
    config = home / "config"
    settings = home / "settings"
    (config / "labconfig").mkdir(parents=True)
    page_config = {"disabledExtensions": {name: True for name in disabled_extensions}}
    (config / "labconfig" / "page_config.json").write_text(json.dumps(page_config))
    # Render every cell in the DOM (no virtual scrolling) so each cell's output can be inspected, and
    # silence the news/update toasts that would otherwise cover part of the page in screenshots.
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))

    extra = dict(env or {})
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # the kernels must use the inline backend a learner gets
    env.pop("COURSE_GRADING", None)
    env.update(
        # The browser suite checks what a learner sees (plots, widgets, no errors), not accuracy:
        # lessons 06-07 train for a few batches here; their full run is nbval's (tests/README.md).
        COURSE_QUICK="1",
        JUPYTER_CONFIG_DIR=str(config),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        IPYTHONDIR=str(home / "ipython"),
    )
    env.update(extra)
    port = free_port()
    token = secrets.token_hex(16)
    log_path = workdir / "jupyterlab.log"
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=", "--ServerApp.open_browser=False",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = LabServer(root, home, port, token, process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with status {process.returncode}:\n{server.log_tail()}")
        try:
            server.api("/api/status")
            return server
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.5)
    stop_lab(server)
    raise RuntimeError(f"JupyterLab did not answer on port {port} within {timeout:.0f} s:\n{server.log_tail()}")


def _processes_of(server: LabServer) -> list:
    """Processes this server started: itself and any kernel whose connection file is in its runtime dir."""
    import psutil

    marker = str(server.home)
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if proc.pid == server.process.pid or marker in cmdline:
            found.append(proc)
    return found


def stop_lab(server: LabServer) -> list[str]:
    """Stop the server and its kernels; returns what had to be killed by force (normally nothing)."""
    import psutil

    try:  # ask nicely first, so kernels shut down cleanly
        for kernel in server.api("/api/kernels") or []:
            server.api(f"/api/kernels/{kernel['id']}", method="DELETE")
    except Exception:
        pass
    if server.process.poll() is None:
        try:
            os.killpg(server.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    forced = []
    for proc in _processes_of(server):
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                forced.append(f"pid {proc.pid}: {' '.join(proc.cmdline())[:120]}")
                proc.kill()
        except psutil.NoSuchProcess:
            continue
    if server.process.poll() is None:
        server.process.kill()
    server.process.wait(timeout=10)
    return forced


# --------------------------------------------------------------------------------------------
# Driving a notebook
# --------------------------------------------------------------------------------------------


@dataclass
class CellExpectation:
    """What a code cell's stored outputs say the learner should see."""

    index: int
    first_line: str
    image: bool
    widget: bool
    source: str


def expectations(notebook: Path) -> list[CellExpectation]:
    """One entry per cell (markdown cells too, so indices match the page), from the stored outputs."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    found = []
    for index, cell in enumerate(cells):
        source = "".join(cell.get("source", ""))
        first = next((line for line in source.splitlines() if line.strip()), "")
        image = widget = False
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            data = output.get("data", {})
            image = image or "image/png" in data
            widget = widget or WIDGET_VIEW in data
        found.append(CellExpectation(index, first[:80], image, widget, source))
    return found


def open_from_file_browser(page, name: str, timeout_s: float = 60) -> None:
    """Open ``name`` the way a learner does: double-click it in the file browser."""
    item = page.locator(f'.jp-DirListing-item[title^="Name: {name}"]')
    if item.count() == 0:
        item = page.locator(".jp-DirListing-item", has_text=name)
    item.first.wait_for(timeout=timeout_s * 1000)
    item.first.dblclick()
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").first.wait_for(timeout=timeout_s * 1000)
    # The kernel must be up before "Run All", or the first cells queue behind a kernel start.
    page.wait_for_function(
        """() => {
            const s = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
            return s && s.getAttribute('data-status') === 'idle';
        }""",
        timeout=timeout_s * 1000,
    )
    # The widget renderer registers itself as the kernel connects; a learner never clicks within
    # the first second, and a test that does can see widget outputs fall back to plain text.
    page.wait_for_timeout(2000)


def run_all_cells(page, attempts: int = 3) -> None:
    """Run > Run All Cells, through the menu bar, until the first cell has visibly started."""
    started = """() => {
        const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
        const prompt = panel && panel.querySelector('.jp-CodeCell .jp-InputArea-prompt');
        return prompt && /\\[(\\*|\\d+)\\]/.test(prompt.textContent);
    }"""
    for attempt in range(attempts):
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        item = page.locator(".lm-Menu-item:not(.lm-mod-disabled) .lm-Menu-itemLabel", has_text="Run All Cells").first
        item.wait_for(timeout=10_000)
        item.click()
        try:
            page.wait_for_function(started, timeout=15_000)
            return
        except Exception:
            page.keyboard.press("Escape")
    raise RuntimeError(f"Run > Run All Cells did not start the notebook after {attempts} attempts")


def wait_until_done(page, timeout_s: float) -> None:
    """Wait until every code cell has an execution count and the kernel is idle."""
    page.wait_for_function(
        """() => {
            const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
            if (!panel) return false;
            const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
            const done = prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
            const status = panel.querySelector('.jp-Notebook-ExecutionIndicator');
            return prompts.length > 0 && done && status && status.getAttribute('data-status') === 'idle';
        }""",
        timeout=timeout_s * 1000,
        polling=1000,
    )


_CELL_REPORT_JS = """() => {
    const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
    return [...panel.querySelectorAll('.jp-Notebook .jp-Cell')].map(cell => {
        const area = cell.querySelector('.jp-OutputArea');
        const text = area ? area.innerText : '';
        const errors = area ? [...area.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]')]
            .map(e => e.innerText).filter(t => /Traceback|Error:|Exception/.test(t)) : [];
        return {
            code: cell.classList.contains('jp-CodeCell'),
            prompt: (cell.querySelector('.jp-InputArea-prompt') || {}).textContent || '',
            images: area ? area.querySelectorAll('img').length : 0,
            widgets: area ? area.querySelectorAll('.jupyter-widgets:not(.jupyter-widgets-output-area)').length : 0,
            widgetError: /Error displaying widget/.test(text),
            figureAsText: /<Figure size \\d+x\\d+ with \\d+ Axes>/.test(text),
            rawModel: /^\\s*(\\w+\\(children=|Model\\(|Loading widget)/m.test(text),
            errors: errors.map(t => t.split('\\n').filter(l => l.trim()).slice(-1)[0] || t.slice(0, 200)),
            text: text.slice(0, 20000),
        };
    });
}"""


@dataclass
class LessonReport:
    """What went wrong in one lesson, each problem naming the lesson and the cell."""

    lesson: str
    problems: list[str] = field(default_factory=list)

    def add(self, cell: CellExpectation | None, message: str) -> None:
        where = f"cell {cell.index} ({cell.first_line!r})" if cell else "notebook"
        self.problems.append(f"{self.lesson}, {where}: {message}")

    def __str__(self) -> str:
        return "\n".join(self.problems) or f"{self.lesson}: ok"


def cell_texts(page) -> list[str]:
    """The text each cell's output area shows on the page (markdown cells give ''), in cell order."""
    return [seen["text"] if seen["code"] else "" for seen in page.evaluate(_CELL_REPORT_JS)]


def shutdown_kernels(server: LabServer) -> None:
    """Shut down every kernel of the server, so that a lesson's kernel does not outlive its test."""
    for kernel in server.api("/api/kernels") or []:
        server.api(f"/api/kernels/{kernel['id']}", method="DELETE")


def inspect_cells(page, lesson: str, expected: list[CellExpectation]) -> LessonReport:
    """Compare what the page shows with what the stored notebook says should show."""
    report = LessonReport(lesson)
    shown = page.evaluate(_CELL_REPORT_JS)
    if len(shown) != len(expected):
        report.add(None, f"the page shows {len(shown)} cells, the notebook has {len(expected)}")
        return report
    for cell, seen in zip(expected, shown):
        if not seen["code"]:
            continue
        for error in seen["errors"]:
            report.add(cell, f"shows an error: {error}")
        if seen["widgetError"]:
            report.add(cell, "shows 'Error displaying widget'")
        if cell.widget and seen["widgets"] == 0:
            detail = "raw widget text instead" if seen["rawModel"] else "nothing rendered"
            report.add(cell, f"a widget should render here, but there is {detail} (is the ipywidgets extension enabled?)")
        # Absolute, whatever the stored outputs say: a figure that reaches the page as its text
        # fallback is a missing picture (13 figures of lessons 06-07 were once stored that way).
        if seen["figureAsText"]:
            report.add(cell, "a figure shows as the text '<Figure size ...>' instead of a picture")
        if cell.image and seen["images"] == 0:
            report.add(cell, "a plot should show here, but there is no image")
    return report


def slider_cells(page) -> list[int]:
    """Indices of cells whose output holds a rendered slider."""
    return page.evaluate(
        """() => {
            const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
            return [...panel.querySelectorAll('.jp-Notebook .jp-Cell')]
                .map((c, i) => c.querySelector('.jp-OutputArea .widget-slider .noUi-handle, .jp-OutputArea .widget-slider input[type=range]') ? i : -1)
                .filter(i => i >= 0);
        }"""
    )


def _output_fingerprint(page, index: int) -> str:
    return page.evaluate(
        """(i) => {
            const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
            const cell = panel.querySelectorAll('.jp-Notebook .jp-Cell')[i];
            const outs = [...cell.querySelectorAll('.jupyter-widgets-output-area, .widget-output')];
            const imgs = [...cell.querySelectorAll('.jp-OutputArea img')].map(img => img.src.slice(-200));
            return outs.map(o => o.innerText).join('|') + '#' + imgs.join('|');
        }""",
        index,
    )


def move_slider(page, index: int, presses: int = 2, timeout_s: float = 30) -> bool:
    """Move the first slider in cell ``index`` with the keyboard; True when the cell's output changed."""
    before = _output_fingerprint(page, index)
    cell = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(index)
    handle = cell.locator(".widget-slider .noUi-handle").first
    handle.scroll_into_view_if_needed()
    handle.click()
    for _ in range(presses):
        handle.press("ArrowRight")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        page.wait_for_timeout(500)
        if _output_fingerprint(page, index) != before:
            return True
    return False


def launch_browser(playwright):
    """Chromium from the system (Playwright's own download does not work offline)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def run_lesson(page, server: LabServer, notebook: Path, *, timeout_s: float, slider: bool = True,
               slider_timeout_s: float = 30) -> LessonReport:
    """Open ``notebook`` in the server's JupyterLab, run every cell, and report what is wrong.

    ``slider_timeout_s`` is how long a moved slider's output may take to change."""
    lesson = notebook.stem
    expected = expectations(notebook)
    page.goto(server.lab_url())
    page.locator(".jp-DirListing-content").first.wait_for(timeout=90_000)
    open_from_file_browser(page, notebook.name)
    run_all_cells(page)
    report = LessonReport(lesson)
    try:
        wait_until_done(page, timeout_s)
    except Exception:
        report.add(None, f"did not finish running within {timeout_s:.0f} s")
        return report
    page.wait_for_timeout(1500)  # let widget views finish rendering after the last message
    report = inspect_cells(page, lesson, expected)
    if slider:
        cells = slider_cells(page)
        if cells and not move_slider(page, cells[0], timeout_s=slider_timeout_s):
            report.add(expected[cells[0]], "moved its slider, but the output did not change")
    return report

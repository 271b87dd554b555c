"""``hostagent top``: one host or the whole fleet, live, in a terminal.

    $ hostagent top                          # the agent on this host, as configured
    $ hostagent top --url https://web-1:9100 --ca-file ca.pem --username ops --password-file pw
    $ hostagent top --prometheus http://prometheus:9090     # every host, one line each
    $ hostagent top --once                   # one plain-text snapshot, for scripts
    $ hostagent top --json                   # the same figures as JSON

Keys: q quits; c, m, d, n sort by CPU, memory, disk, network; g switches
the table between processes (the agent's live list), process groups and
services and containers; h shows help. Colours follow the alert thresholds
of config/alerting.yaml. When standard
output is not a terminal it prints one plain snapshot (``-n N`` for N of
them, one interval apart); on a dumb terminal it prints plain snapshots
until q. A source that stops answering is shown as such, with the last
figures dimmed, until it answers again.

Exit status: 0 normal end, 1 the source cannot be read (--once/--json), 2 bad usage.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import ArgumentParser, ToolError, connection, promapi, run, screen, thresholdfile
from .connection import Connection
from .hostview import COLLECTOR_OF, TABLES, AgentSource, HostModel, Samples

DEFAULT_TIMEOUT = 3.0
# How long after a collector is due to have run a one-shot snapshot scrapes
# again (the run takes a moment; clocks of another host may differ a little).
SCRAPE_MARGIN = 0.25
# The collectors behind the rates of each process table (the live list has its own).
TABLE_COLLECTORS = {"processes": (), "groups": ("process_groups", "processes"), "services": ("cgroups", "cgroup")}
STYLES = {"ok": "green", "warning": "bold yellow", "critical": "bold red", "dim": "dim", "bold": "bold", "head": "bold white on blue", "bar": "cyan", "": ""}


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="hostagent top", description="A live view of one host's agent, or of every host in Prometheus.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--url", metavar="URL", help="another host's agent, e.g. https://web-1:9100 (default: the agent configured on this host)")
    src.add_argument("--prometheus", metavar="URL", help="the fleet view: every host Prometheus scrapes, one line each")
    p.add_argument("--config", default=os.environ.get("HOSTAGENT_CONFIG"), help="the local agent's config file, for its address and TLS (default: as the agent finds it)")
    p.add_argument("--job", default="hostagent", help="with --prometheus: the agents' scrape job (default hostagent)")
    p.add_argument("-d", "--interval", type=float, default=2.0, metavar="SECONDS", help="refresh every SECONDS (default 2)")
    p.add_argument("--sort", choices=sorted(screen.SORT_KEYS.values()), default="cpu", help="initial sort (default cpu)")
    p.add_argument("--table", choices=TABLES, help="one host: the table to show first (default: processes, else the first the agent has)")
    p.add_argument("--once", action="store_true", help="print one plain-text snapshot and exit")
    p.add_argument("--json", action="store_true", help="print one snapshot as JSON and exit")
    p.add_argument("-n", "--iterations", type=int, metavar="N", help="plain-text snapshots to print, one interval apart, then exit")
    p.add_argument("--thresholds", metavar="FILE", help="alert thresholds for the colours (default: the project's config/alerting.yaml)")
    connection.add_arguments(p, timeout=DEFAULT_TIMEOUT)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run("top", _main, argv)


def _main(argv: List[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.interval < 0.2:
        raise ToolError(f"--interval must be at least 0.2 seconds, got {args.interval:g}", 2)
    if args.iterations is not None and args.iterations < 1:
        raise ToolError(f"-n must be 1 or more, got {args.iterations}", 2)
    thresholds, source_text = thresholdfile.load(args.thresholds)
    source = make_source(args)
    ctx = screen.Context(sort=args.sort, table=args.table, thresholds=thresholds, thresholds_source=source_text, interval=args.interval)
    ctx.extra["source"] = source.url
    if thresholds is None:
        ctx.message = source_text  # shown until the first answer
    dumb = os.environ.get("TERM", "dumb") in ("dumb", "unknown", "")
    ctx.unicode = not dumb and "utf" in (getattr(sys.stdout, "encoding", "") or "").lower()
    one_shot = args.json or args.once or (not sys.stdout.isatty() and args.iterations is None)
    if one_shot:
        view = snapshot(source, None if args.json else ctx)
        if args.json:
            print(json.dumps(view, indent=2, default=str))
        else:
            ctx.width = terminal_width()
            sys.stdout.write(screen.plain(lines_for(source, view, ctx)))
        return 0
    interactive = sys.stdout.isatty() and sys.stdin.isatty()
    if not interactive or dumb:
        return batch(source, ctx, args.iterations, keys=sys.stdin.isatty())
    return fullscreen(source, ctx)


# --------------------------------------------------------------------------
# Sources


def make_source(args: Any) -> Any:
    if args.prometheus:
        from .fleet import FleetSource

        return FleetSource(promapi.from_args(args), args.job)
    if args.url:
        return AgentFeed(Connection.from_args(args.url, args, "agent"))
    return AgentFeed(local_agent(args))


def local_agent(args: Any) -> Connection:
    """The agent configured on this host, asked the way ``hostagent healthcheck`` asks it."""
    from .. import config as cfgmod
    from .. import localagent

    try:
        agent = localagent.find(args.config)
    except cfgmod.ConfigError as exc:
        raise ToolError(f"the agent's configuration is not usable: {' '.join(str(exc).split())}", 2) from None
    # The local agent's certificate names the host as others see it, not
    # loopback: without a CA file, do not check it (as the health check does).
    return Connection.from_args(agent.url, args, "agent", insecure_default=agent.tls is not None)


class AgentFeed:
    """An agent's /metrics, turned into the host view."""

    def __init__(self, conn: Connection):
        self.source = AgentSource(conn)
        self.model = HostModel()
        self.url = conn.url

        self.processes: Optional[Dict[str, Any]] = None

    def fetch(self, processes: bool = True) -> Dict[str, Any]:
        """The view from a new scrape, and a new process list unless
        ``processes`` is false (then the last one read is shown again)."""
        scraped, samples = self.source.fetch()
        self.last_samples = samples
        if processes:
            self.processes = self.source.process_list()
        return self.model.view(scraped, samples, self.url, self.processes)


def lines_for(source: Any, view: Optional[Dict[str, Any]], ctx: screen.Context) -> List[screen.Line]:
    return screen.host_lines(view, ctx) if isinstance(source, AgentFeed) else screen.fleet_lines(view, ctx)


def snapshot(source: Any, ctx: Optional[screen.Context] = None) -> Dict[str, Any]:
    """One complete view: for an agent, its counters read across a run of
    each collector that rates come from (at most the longest interval).
    With ``ctx`` (one screen of plain text), only the process table shown
    is waited for: the live list needs no second run, and the processes
    collector runs every 30 s by default."""
    if not isinstance(source, AgentFeed):
        return source.fetch()
    view = source.fetch()
    skip: Tuple[str, ...] = ()
    if ctx is not None:
        shown = screen.shown_table(view, ctx)
        skip = tuple(c for table, names in TABLE_COLLECTORS.items() if table != shown for c in names)
    first = collector_stamps(source.last_samples)
    intervals = {labels.get("collector"): v for labels, v in source.last_samples.get("hostagent_collector_interval_seconds", [])}
    wanted = [c for _, names in COLLECTOR_OF for c in names if c in first and c not in skip]
    deadline = time.monotonic() + min(60.0, max([intervals.get(c, 15.0) for c in wanted] + [1.0]) + 2.0)
    while wanted and time.monotonic() < deadline:
        # Scrape again when the next of the awaited collectors is due to
        # have run (its last run plus its interval, by the agent's clock),
        # not every moment until then: each scrape is a whole /metrics.
        due = min(first[c] + intervals.get(c, 15.0) for c in wanted) - time.time()
        time.sleep(min(max(due + SCRAPE_MARGIN, SCRAPE_MARGIN), max(0.0, deadline - time.monotonic())))
        view = source.fetch(processes=False)
        now = collector_stamps(source.last_samples)
        wanted = [c for c in wanted if now.get(c) == first.get(c)]
    return view


def collector_stamps(samples: Samples) -> Dict[str, float]:
    return {labels.get("collector", ""): v for labels, v in samples.get("hostagent_collector_last_success_timestamp_seconds", [])}


def terminal_width() -> int:
    if sys.stdout.isatty():
        return shutil.get_terminal_size((80, 24)).columns
    return int(os.environ.get("COLUMNS", "0") or 0) or 120


# --------------------------------------------------------------------------
# The refresh loop, shared by the plain and the full-screen modes


class Fetcher(threading.Thread):
    """Fetches every interval in the background, so the screen never waits
    on a slow or silent source; wakes the screen through a pipe."""

    def __init__(self, source: Any, interval: float, wake_fd: int):
        super().__init__(name="hostagent-top-fetch", daemon=True)
        self.source = source
        self.interval = interval
        self.wake_fd = wake_fd
        self.stop = threading.Event()
        self.view: Optional[Dict[str, Any]] = None
        self.error: Optional[str] = None
        self.error_since: Optional[float] = None
        self.fetches = 0

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                view = self.source.fetch()
                self.view, self.error, self.error_since = view, None, None
            except ToolError as exc:
                if self.error_since is None:
                    self.error_since = time.time()
                self.error = str(exc)
            except Exception as exc:  # noqa: BLE001  # a bug must not freeze the screen
                self.error = f"{type(exc).__name__}: {exc}"
                self.error_since = self.error_since or time.time()
            self.fetches += 1
            try:
                os.write(self.wake_fd, b"f")
            except OSError:
                return
            self.stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def apply(self, ctx: screen.Context) -> None:
        ctx.error, ctx.error_since = self.error, self.error_since


def handle_key(ch: str, ctx: screen.Context, view: Optional[Dict[str, Any]] = None) -> bool:
    """Apply one key to what is shown of ``view``; False to quit."""
    if ch in ("q", "Q"):
        return False
    if ctx.help and ch not in ("h", "?"):
        ctx.help = False
        return True
    if ch in ("h", "?", "H"):
        ctx.help = not ctx.help
    elif ch.lower() in screen.SORT_KEYS:
        ctx.sort = screen.SORT_KEYS[ch.lower()]
        ctx.message = f"sorted by {ctx.sort}"
    elif ch.lower() == screen.TABLE_KEY and view is not None and "processes" in view:
        table = screen.next_table(view, ctx)
        if table is None:
            ctx.message = "this agent serves no process list, process groups or services"
        else:
            ctx.table = table
            ctx.message = f"showing {screen.TABLE_TITLES[table]}"
    return True


class KeyReader:
    """Single keys from a terminal without echo or Enter (cbreak), restored on exit."""

    def __init__(self, enabled: bool):
        self.fd = sys.stdin.fileno() if enabled else None
        self.saved: Any = None

    def __enter__(self) -> "KeyReader":
        if self.fd is not None:
            import termios
            import tty

            try:
                self.saved = termios.tcgetattr(self.fd)
                tty.setcbreak(self.fd)
            except termios.error:
                self.fd = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None and self.saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)

    def read(self) -> str:
        if self.fd is None:
            return ""
        try:
            return os.read(self.fd, 64).decode("utf-8", "ignore")
        except OSError:
            return ""


def loop(source: Any, ctx: screen.Context, draw: Callable[[Optional[Dict[str, Any]], bool], None], keys: KeyReader, frames: Optional[int]) -> int:
    """Call ``draw(view, fetched)`` on every fetch, key and resize (and each
    second, for the clock); stop on q, Ctrl-C or after ``frames`` fetches."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    fetcher = Fetcher(source, ctx.interval, wake_w)
    previous = signal.getsignal(signal.SIGWINCH)
    signal.signal(signal.SIGWINCH, lambda *_: os.write(wake_w, b"r"))
    fetcher.start()
    try:
        while True:
            fds = [wake_r] + ([keys.fd] if keys.fd is not None else [])
            ready, _, _ = select.select(fds, [], [], 1.0)
            fetched = False
            if wake_r in ready:
                fetched = b"f" in os.read(wake_r, 64)
            if keys.fd is not None and keys.fd in ready:
                for ch in keys.read():
                    if not handle_key(ch, ctx, fetcher.view):
                        return 0
            fetcher.apply(ctx)
            draw(fetcher.view, fetched)
            if frames is not None and fetcher.fetches >= frames:
                if ctx.error and fetcher.view is None:
                    raise ToolError(ctx.error)
                return 0
    except KeyboardInterrupt:
        return 0
    finally:
        fetcher.stop.set()
        signal.signal(signal.SIGWINCH, previous)
        os.close(wake_r)
        os.close(wake_w)


def batch(source: Any, ctx: screen.Context, frames: Optional[int], keys: bool) -> int:
    """Plain snapshots, one per fetch, with no escape codes at all."""
    ctx.width = terminal_width()
    printed = [0]

    def draw(view: Optional[Dict[str, Any]], fetched: bool) -> None:
        if not fetched:
            return
        if printed[0]:
            sys.stdout.write("\n")
        sys.stdout.write(screen.plain(lines_for(source, view, ctx)))
        sys.stdout.flush()
        printed[0] += 1

    with KeyReader(keys) as reader:
        return loop(source, ctx, draw, reader, frames)


def fullscreen(source: Any, ctx: screen.Context) -> int:
    """The live view: rich draws on the alternate screen with the cursor hidden
    and puts the terminal back as it was on the way out."""
    from . import require_extra

    require_extra("top", "top", "rich")
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    console = Console(highlight=False)

    def render(view: Optional[Dict[str, Any]]) -> Text:
        ctx.width, ctx.height = console.size.width, console.size.height
        lines = lines_for(source, view, ctx)
        text = Text(no_wrap=True, overflow="crop", end="")
        for i, line in enumerate(lines):
            if i:
                text.append("\n")
            for part, style in line:
                text.append(part, style=STYLES.get(style, ""))
        return text

    with KeyReader(True) as reader, Live(render(None), console=console, screen=True, auto_refresh=False, redirect_stdout=False, redirect_stderr=False) as live:

        def draw(view: Optional[Dict[str, Any]], fetched: bool) -> None:
            if fetched:
                ctx.message = ""
            live.update(render(view), refresh=True)

        return loop(source, ctx, draw, reader, None)


if __name__ == "__main__":
    sys.exit(main())

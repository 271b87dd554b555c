"""Command line: the agent daemon and the operator subcommands.

    hostagent [--config FILE] [--web.listen-address :9100] ...   run the agent
    hostagent --check-config                                       validate and exit 0/2
    hostagent --once                                               print one exposition
    hostagent rules [--check]        regenerate Prometheus alert rules
    hostagent dashboards [--check]   regenerate Grafana dashboards
    hostagent alerts [test]          what Alertmanager has firing; send a test alert
    hostagent silence ...            add, list and expire silences
    hostagent docs [--check]         regenerate docs/metrics.md and config/agent.example.yaml

Exit status: 0 fine, 1 failure at run time, 2 bad configuration or usage,
3 stopped by self-monitoring.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import platform
import signal
import sys
import threading
import time
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Type

import psutil

from . import __version__
from . import config as cfgmod
from . import logsetup
from .agent import Agent, Runner
from .collectors import load_all
from .collectors.base import BaseCollector
from .exposition import Exposition, build_registry
from .selfmon import SelfMonitor, process_usage

log = logging.getLogger("hostagent")

SUBCOMMANDS: Dict[str, str] = {
    "rules": "hostagent.alerting.generate:main",
    "dashboards": "hostagent.dashboards.generate:main",
    "alerts": "hostagent.alerting.cli:alerts_main",
    "silence": "hostagent.alerting.cli:silence_main",
    "docs": "hostagent.docsgen:main",
    "healthcheck": "hostagent.healthcheck:main",
}

SHUTDOWN_TIMEOUT = 5.0


def build_parser(registry: Dict[str, Type[BaseCollector]]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hostagent",
        description="Prometheus-native system resource monitor. Subcommands: " + ", ".join(SUBCOMMANDS) + ".",
    )
    parser.add_argument(
        "--config",
        default=os.environ.get("HOSTAGENT_CONFIG"),
        help=f"YAML config file (default: $HOSTAGENT_CONFIG, else the first of {', '.join(cfgmod.DEFAULT_CONFIGS)} that exists, else built-in defaults)",
    )
    parser.add_argument("--web.listen-address", dest="listen_address", help="address to listen on, e.g. :9100 or 127.0.0.1:9100")
    parser.add_argument("--web.config.file", dest="web_config_file", help="TLS and basic auth config file")
    parser.add_argument("--web.max-requests", dest="max_requests", help="most requests handled at once")
    parser.add_argument("--log.level", dest="log_level", help="debug, info, warning or error")
    parser.add_argument("--log.format", dest="log_format", help="text or json")
    for key in cfgmod.SECTIONS["paths"]:
        parser.add_argument(f"--path.{key}", dest=f"path_{key}", help=f"where the host's {key} is mounted")
    parser.add_argument("--check-config", action="store_true", help="validate the configuration, print problems, exit 0 or 2")
    parser.add_argument("--once", action="store_true", help="run every enabled collector once, print the exposition, exit")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    group = parser.add_argument_group(
        "collectors",
        "Every collector NAME takes --collector.NAME and --no-collector.NAME (switch it on or off) and "
        "--collector.NAME.interval=SECONDS, besides its own options below. "
        "Every option is also an environment variable (HOSTAGENT_COLLECTOR_NAME_OPTION) and a config key.",
    )
    for name, cls in registry.items():
        state = "on" if cls.default_enabled else "off"
        group.add_argument(f"--collector.{name}", dest=f"enable_{name}", action="store_const", const=True, help=f"enable the {name} collector (default {state}): {cls.help}")
        group.add_argument(f"--no-collector.{name}", dest=f"enable_{name}", action="store_const", const=False, help=argparse.SUPPRESS)
        group.add_argument(f"--collector.{name}.interval", dest=f"opt_{name}__interval", metavar="SECONDS", help=argparse.SUPPRESS)
        for key, opt in cls.options.items():
            group.add_argument(f"--collector.{name}.{cfgmod.flag_name(key)}", dest=f"opt_{name}__{key}", metavar="VALUE", help=opt.doc)
    return parser


def flag_overrides(args: argparse.Namespace) -> List[cfgmod.Override]:
    """Flags as config overrides with the flag named as their origin."""
    out: List[cfgmod.Override] = []
    simple = {
        "listen_address": (("web", "listen_address"), "--web.listen-address"),
        "web_config_file": (("web", "config_file"), "--web.config.file"),
        "max_requests": (("web", "max_requests"), "--web.max-requests"),
        "log_level": (("logging", "level"), "--log.level"),
        "log_format": (("logging", "format"), "--log.format"),
    }
    for key in cfgmod.SECTIONS["paths"]:
        simple[f"path_{key}"] = (("paths", key), f"--path.{key}")
    for dest, (path, flag) in simple.items():
        value = getattr(args, dest)
        if value is not None:
            parsed = cfgmod._parse_scalar(value) if dest == "max_requests" else value
            out.append((path, parsed, f"flag {flag}"))
    for dest, value in sorted(vars(args).items()):
        if value is None:
            continue
        if dest.startswith("enable_"):
            name = dest[len("enable_"):]
            out.append((("collectors", name, "enabled"), value, f"flag --{'' if value else 'no-'}collector.{name}"))
        elif dest.startswith("opt_"):
            name, key = dest[len("opt_"):].split("__", 1)
            out.append((("collectors", name, key), cfgmod._parse_scalar(value), f"flag --collector.{name}.{cfgmod.flag_name(key)}"))
    return out


def build_agent(config: cfgmod.Config, registry: Dict[str, Type[BaseCollector]]) -> Agent:
    runners = []
    for cc in config.enabled_collectors():
        collector = registry[cc.name](cc.options, config.paths)
        runners.append(Runner(cc.name, collector, cc.interval))
    return Agent(runners)


def run_subcommand(name: str, argv: List[str]) -> int:
    module_name, func_name = SUBCOMMANDS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        print(f"hostagent {name}: not available in this installation ({exc})", file=sys.stderr)
        return 1
    return int(getattr(module, func_name)(argv) or 0)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in SUBCOMMANDS:
        return run_subcommand(args_list[0], args_list[1:])
    registry = load_all()
    args = build_parser(registry).parse_args(args_list)
    if args.version:
        print(f"hostagent {__version__} (python {platform.python_version()}, psutil {psutil.__version__})")
        return 0
    try:
        config = cfgmod.load(args.config or cfgmod.default_config_path(), registry, os.environ, flag_overrides(args))
    except cfgmod.ConfigError as exc:
        print(exc, file=sys.stderr)
        # Report the web config's problems in the same run when its path is known.
        try:
            load_web_security(exc.partial.get(("web", "config_file")))
        except cfgmod.ConfigError as web_exc:
            print(web_exc, file=sys.stderr)
        return 2
    try:
        web_security = load_web_security(config.web["config_file"])
    except cfgmod.ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.check_config:
        enabled = ", ".join(c.name for c in config.enabled_collectors()) or "none"
        print(f"configuration OK: {config.source} (collectors: {enabled})")
        return 0
    logsetup.setup(config.logging["level"], config.logging["format"])
    psutil.PROCFS_PATH = config.paths.procfs
    agent = build_agent(config, registry)
    if args.once:
        return run_once(agent)
    return serve(config, agent, web_security)


def load_web_security(path: Optional[str]) -> Optional[object]:
    """The validated web config (webconfig.WebConfig), or None without one;
    raise ConfigError listing every problem in the file."""
    if not path:
        return None
    from .webconfig import load_web_config

    return load_web_config(path)


@contextlib.contextmanager
def _openssl_hidden() -> Iterator[None]:
    """Imports inside find no ``ssl`` module; no change if it is loaded already."""
    if "ssl" in sys.modules:
        yield
        return
    sys.modules["ssl"] = None  # type: ignore[assignment]  # `import ssl` raises ImportError
    try:
        yield
    finally:
        if "ssl" in sys.modules and sys.modules["ssl"] is None:
            del sys.modules["ssl"]


def run_once(agent: Agent) -> int:
    failed = agent.run_once()
    for runner in agent.runners:
        if runner.name in failed:
            print(f"collector {runner.name} failed: {runner.status.last_error}", file=sys.stderr)
    exposition = Exposition(agent, build_registry(agent))
    sys.stdout.write(exposition.body()[0].decode("utf-8"))
    sys.stdout.flush()
    return 1 if failed else 0


def serve(config: cfgmod.Config, agent: Agent, web_security: Optional[object]) -> int:
    stop = threading.Event()
    exit_code = [0]

    def request_stop(code: int = 0) -> None:
        exit_code[0] = exit_code[0] or code
        stop.set()

    selfmon = None
    if config.limits["enabled"]:
        selfmon = SelfMonitor(config.limits, agent, process_usage(), request_stop)
    ssl_context = web_security.ssl_context if web_security else None  # type: ignore[attr-defined]
    if ssl_context is None:
        # Plain HTTP: asyncio treats ssl as optional, so OpenSSL (about 4 MiB
        # resident) is never loaded.
        with _openssl_hidden():
            from .routes import Routes
            from .web import HTTPServer, Limits
    else:
        from .routes import Routes
        from .web import HTTPServer, Limits
    # The HTTP server's own metrics too; `server` is made below, before any render.
    registry = build_registry(agent, extra=lambda: [*(selfmon.families() if selfmon else ()), *server.families()])
    exposition = Exposition(agent, registry)
    host, port = cfgmod.parse_listen_address(config.web["listen_address"])
    web = config.web
    server = HTTPServer(
        host,
        port,
        Routes(agent, exposition),
        Limits.from_config(web),
        security=web_security.security if web_security else None,  # type: ignore[attr-defined]
        log_requests=web["access_log"],
    )
    try:
        addresses = server.bind()
    except OSError as exc:
        log.error("cannot listen on %s: %s", web["listen_address"], exc.strerror or exc)
        server.stop()
        return 1
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: request_stop(0))
    agent.start()
    exposition.start()
    server.start()
    watcher = None
    if web_security is not None:  # certificates and credentials follow the file
        from .webconfig import WebConfigWatcher

        watcher = WebConfigWatcher(web_security, server)  # type: ignore[arg-type]
        watcher.start()
    scheme = "https" if ssl_context else "http"
    log.info(
        "hostagent %s listening on %s (%s%s) with collectors: %s",
        __version__,
        ", ".join(f"{a[0]}:{a[1]}" for a in addresses),
        scheme,
        ", basic auth" if server.security.authenticate else "",
        ", ".join(r.name for r in agent.runners) or "none",
    )
    next_check = time.monotonic() + config.limits["check_interval"]
    while not stop.wait(1.0):
        agent.check_health()
        if selfmon is not None and time.monotonic() >= next_check:
            next_check += config.limits["check_interval"]
            selfmon.check()
    log.info("shutting down")
    if watcher is not None:
        watcher.stop()
    server.stop()
    exposition.stop()
    stuck = agent.stop(SHUTDOWN_TIMEOUT)
    log.info("stopped")
    if stuck:
        # A thread blocked in a system call cannot be interrupted; leave without it.
        logging.shutdown()
        sys.stdout.flush()
        os._exit(exit_code[0])
    return exit_code[0]


if __name__ == "__main__":
    sys.exit(main())

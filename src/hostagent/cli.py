"""Command line: the agent daemon and the operator subcommands.

    hostagent [--config FILE] [--web.listen-address :9100] ...   run the agent
    hostagent --check-config                                       validate and exit 0/2
    hostagent --once                                               print one exposition
    hostagent rules [--check]        regenerate Prometheus alert rules
    hostagent dashboards [--check]   regenerate Grafana dashboards
    hostagent alerts [test]          what Alertmanager has firing; send a test alert
    hostagent silence ...            add, list and expire silences
    hostagent docs [--check]         regenerate docs/metrics.md and config/agent.example.yaml
    hostagent hash-password          print a bcrypt hash for the web config's basic_auth_users

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
import socket
import sys
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Type

import psutil

from . import __version__
from . import config as cfgmod
from . import logsetup
from .agent import Agent, Runner
from .collectors import load_all
from .collectors.base import BaseCollector
from .exposition import Exposition, build_registry
from .selfmon import SelfMonitor, process_usage
from .usage import ArgumentParser

log = logging.getLogger("hostagent")

SUBCOMMANDS: Dict[str, str] = {
    "rules": "hostagent.alerting.generate:main",
    "dashboards": "hostagent.dashboards.generate:main",
    "alerts": "hostagent.alerting.cli:alerts_main",
    "silence": "hostagent.alerting.cli:silence_main",
    "docs": "hostagent.docsgen:main",
    "healthcheck": "hostagent.healthcheck:main",
    "hash-password": "hostagent.hashpassword:main",
    "top": "hostagent.tools.top:main",
    "report": "hostagent.tools.report:main",
    "export": "hostagent.tools.export:main",
    "targets": "hostagent.targets:main",
    "install": "hostagent.install:main",
    "uninstall": "hostagent.install:uninstall_main",
}

SHUTDOWN_TIMEOUT = 5.0


class _SetSetting(argparse.Action):
    """Records a setting's flag as (Flag, value, flag as typed); a switch
    without a value sets ``const``."""

    def __init__(self, option_strings: Sequence[str], dest: str, flag: cfgmod.Flag, **kwargs: Any):
        self.flag = flag
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: Optional[str] = None) -> None:
        value = values if isinstance(values, str) else self.const  # nargs 0 gives [], "?" None
        setattr(namespace, self.dest, (self.flag, value, option_string))


def _metavar(path: Tuple[str, ...]) -> str:
    key = path[-1]
    if key.endswith(("interval", "timeout")):
        return "SECONDS"
    if key.endswith(("_include", "_exclude")):
        return "REGEX"
    if path[0] == "paths" or key.endswith("_file"):
        return "PATH"
    return "HOST:PORT" if key.endswith("address") else "VALUE"


def build_parser(registry: Dict[str, Type[BaseCollector]]) -> ArgumentParser:
    parser = ArgumentParser(
        prog="hostagent",
        usage="hostagent [--config FILE] [--check-config | --once] [--SECTION.KEY VALUE ...]\n       hostagent {" + ",".join(SUBCOMMANDS) + "} ...",
        description="Prometheus-native system resource monitor. Subcommands: " + ", ".join(SUBCOMMANDS) + ". "
        "Every setting of the config file is also a flag, --SECTION.KEY with '-' for '_', --log. and --path. for "
        "the logging and paths sections (--web.read-timeout, --log.level, --path.procfs); an on/off setting is a switch, --X or --no-X.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--config",
        default=os.environ.get("HOSTAGENT_CONFIG"),
        metavar="FILE",
        help=f"YAML config file (default: $HOSTAGENT_CONFIG, else {cfgmod.default_configs_text()}, else built-in defaults)",
    )
    parser.add_argument("--check-config", action="store_true", help="validate the configuration, print problems, exit 0 or 2")
    parser.add_argument("--once", action="store_true", help="run every enabled collector once, print the exposition, exit")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    groups = {section: parser.add_argument_group(f"{section} settings") for section in cfgmod.SECTIONS}
    groups["collectors"] = parser.add_argument_group(
        "collectors",
        "Every collector NAME takes --collector.NAME and --no-collector.NAME (switch it on or off) and "
        "--collector.NAME.interval=SECONDS, besides its own options below. "
        "Every option is also an environment variable (HOSTAGENT_COLLECTOR_NAME_OPTION) and a config key.",
    )
    registry_help = {name: cls.help for name, cls in registry.items()}
    for flag in cfgmod.flags(registry):
        group = groups[flag.path[0]]
        dest = "setting:" + ".".join(flag.path)
        default = flag.option.default
        if flag.path[0] == "collectors":
            name = flag.path[1]
            if flag.path[2] == "enabled":
                help_ = f"enable the {name} collector (default {'on' if default else 'off'}): {registry_help[name]}"
            else:
                help_ = argparse.SUPPRESS if flag.path[2] == "interval" else flag.option.doc
        else:
            shown = {True: "true", False: "false", None: "none"}.get(default, default) if isinstance(default, (bool, type(None))) else default
            help_ = f"{flag.option.doc} (default {shown})"
        help_ = help_ if help_ is argparse.SUPPRESS else help_.replace("%", "%%")
        if flag.switch:
            group.add_argument(*flag.names, dest=dest, action=_SetSetting, flag=flag, nargs="?", const=True, metavar="true|false", help=help_)
            group.add_argument(flag.negation, dest=dest, action=_SetSetting, flag=flag, nargs=0, const=False, help=argparse.SUPPRESS)
        else:
            # A choice shows its values, from the option itself: --log.level {debug,info,warning,error}.
            metavar = "{" + ",".join(flag.option.choices) + "}" if flag.option.choices else _metavar(flag.path)
            group.add_argument(*flag.names, dest=dest, action=_SetSetting, flag=flag, metavar=metavar, help=help_)
    return parser


def flag_overrides(args: argparse.Namespace) -> List[cfgmod.Override]:
    """Flags as config overrides, each with the flag as typed as its origin."""
    out: List[cfgmod.Override] = []
    for dest, given in sorted(vars(args).items()):
        if dest.startswith("setting:") and given is not None:
            flag, value, typed = given
            if isinstance(value, str):
                value = cfgmod.parse_text(value, flag.option)
            out.append((flag.path, value, f"flag {typed}"))
    return out


def build_agent(config: cfgmod.Config, registry: Dict[str, Type[BaseCollector]]) -> Agent:
    runners = []
    for cc in config.enabled_collectors():
        collector = registry[cc.name](cc.options, config.paths)
        runners.append(Runner(cc.name, collector, cc.interval))
    return Agent(runners, disabled={c.name: c.off_because for c in config.collectors.values() if not c.enabled})


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
    parser = build_parser(registry)
    args, extra = parser.parse_known_args(args_list)
    if extra:
        parser.unknown(extra, list(SUBCOMMANDS))
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
        web = f", web config {config.web['config_file']} ({web_serves(web_security)})" if config.web["config_file"] else ""
        print(f"configuration OK: {config.source}{web} (collectors: {enabled})")
        return 0
    logsetup.setup(config.logging["level"], config.logging["format"])
    log_settings(config, web_security)
    psutil.PROCFS_PATH = config.paths.procfs
    agent = build_agent(config, registry)
    if args.once:
        return run_once(agent)
    return serve(config, agent, web_security)


def web_serves(web_security: Any) -> str:
    """What a loaded web config turns on, for messages: "TLS and basic auth"."""
    return " and ".join(what for what, on in (("TLS", web_security.ssl_context), ("basic auth", web_security.auth)) if on) or "plain HTTP, no basic auth"


def log_settings(config: cfgmod.Config, web_security: Any) -> None:
    """At debug, the settings in effect: where from, each section, each
    collector with its interval and options (or why it is off), the web config."""
    if not log.isEnabledFor(logging.DEBUG):
        return
    log.debug("configuration from %s", config.source or "built-in defaults (no config file)")
    for section in ("web", "logging", "limits"):
        values = getattr(config, section)
        log.debug("settings %s: %s", section, ", ".join(f"{key}={values[key]}" for key in values))
    log.debug("settings paths: procfs=%s, sysfs=%s, rootfs=%s", config.paths.procfs, config.paths.sysfs, config.paths.rootfs)
    for c in config.collectors.values():
        if c.enabled:
            options = "".join(f", {key}={value}" for key, value in c.options.items())
            log.debug("collector %s: every %gs%s", c.name, c.interval, options)
        else:
            log.debug("collector %s: %s", c.name, c.off_because)
    if web_security is not None:
        log.debug("web config %s loaded: %s (files: %s)", web_security.path, web_serves(web_security), ", ".join(web_security.files))


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
    except socket.gaierror as exc:
        # The form was checked with the configuration; whether a name resolves is only known now.
        log.error("cannot listen on %s: host name %r does not resolve (%s)", web["listen_address"], host, exc.strerror or exc)
        server.stop()
        return 1
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

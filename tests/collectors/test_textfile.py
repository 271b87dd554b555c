"""Tests of the textfile collector: parsing, each safety rule, and a concurrent writer."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from support import REPO, samples_of
from textfile_writer import content

from hostagent import config as cfgmod
from hostagent.collectors import load_all
from hostagent.collectors import textfile
from hostagent.collectors.base import NotAvailable
from hostagent.collectors.textfile import Family, Refused, TextFile, TextfileCollector, TextfileSample, parse_textfile, read_whole
from hostagent.promclient import families_of, generate_openmetrics, generate_text
from prometheus_client.samples import Sample

GOOD = """\
# HELP backup_last_success_timestamp_seconds When the last backup finished.
# TYPE backup_last_success_timestamp_seconds gauge
backup_last_success_timestamp_seconds{job="db"} 1.7e+09
backup_last_success_timestamp_seconds{job="home"} 1.69e+09
# TYPE backup_runs_total counter
backup_runs_total 12
# HELP backup_duration_seconds How long backups take.
# TYPE backup_duration_seconds summary
backup_duration_seconds{quantile="0.5"} 30
backup_duration_seconds_sum 400
backup_duration_seconds_count 12
# TYPE backup_size_bytes histogram
backup_size_bytes_bucket{le="1e+09"} 3
backup_size_bytes_bucket{le="+Inf"} 12
backup_size_bytes_sum 5e+10
backup_size_bytes_count 12
raid_controller_ok 1
"""


@pytest.fixture(autouse=True)
def _registry():
    load_all()  # the reserved names come from every registered collector


def collector(directory, **options):
    return TextfileCollector({"directory": str(directory), **options})


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------
# Parsing


def test_parse_keeps_types_and_help_and_names_a_default_help():
    fams = {f.name: f for f in parse_textfile(GOOD, "backup.prom")}
    assert [(n, f.type) for n, f in fams.items()] == [
        ("backup_last_success_timestamp_seconds", "gauge"),
        ("backup_runs", "counter"),
        ("backup_duration_seconds", "summary"),
        ("backup_size_bytes", "histogram"),
        ("raid_controller_ok", "unknown"),
    ]
    assert fams["backup_duration_seconds"].help == "How long backups take."
    assert fams["backup_runs"].help == "Metric read from backup.prom"
    assert [s[:3] for s in fams["backup_last_success_timestamp_seconds"].samples] == [
        ("backup_last_success_timestamp_seconds", {"job": "db"}, 1.7e9),
        ("backup_last_success_timestamp_seconds", {"job": "home"}, 1.69e9),
    ]
    assert [s.name for s in fams["backup_size_bytes"].samples] == ["backup_size_bytes_bucket"] * 2 + ["backup_size_bytes_sum", "backup_size_bytes_count"]


def test_two_stretches_of_one_family_are_joined_and_empty_families_dropped():
    text = "# TYPE a gauge\na{x=\"1\"} 1\n# TYPE b gauge\nb 2\n# TYPE a gauge\na{x=\"2\"} 3\n# TYPE empty gauge\n"
    fams = parse_textfile(text, "f.prom")
    assert [(f.name, len(f.samples)) for f in fams] == [("a", 2), ("b", 1)]


@pytest.mark.parametrize("text, reason", [
    ('x{a="1} 3\n', "not valid text format: line 1: "),
    ("ok 1\nbad line here\n", "not valid text format: line 2: "),
    ("# TYPE x info\nx 1\n", "family x: type 'info' is not one of the text format's"),
    ("# TYPE x gauge\nx 1\n# TYPE y gauge\ny 1\n# TYPE x counter\nx 2\n", "family x is declared twice, as gauge and counter"),
    ('x{a="1"} 1\nx{a="1"} 2\n', "series x{'a': '1'} appears twice"),
    ("x 1 1700000000000\n", "x: has a timestamp"),
    ('x{__meta="1"} 1\n', "not valid text format: line 1: Invalid labels"),
    ('x{"a.b"="1"} 1\n', "x: invalid label name 'a.b'"),
    ('{"x.y"} 1\n', "invalid metric name 'x.y'"),
    ("# TYPE x_total gauge\nx_total 1\n# TYPE x counter\nx 2\n", "sample name x_total is used by two families, x_total and x"),
])
def test_parse_refusals_say_why(text, reason):
    with pytest.raises(Refused) as info:
        parse_textfile(text, "f.prom")
    assert str(info.value).startswith(reason), str(info.value)


# --------------------------------------------------------------------------
# Families


def test_families_from_hand_made_sample_merge_files_and_add_mtime_and_error():
    a = TextFile("a.prom", 100.0, (Family("jobs", "gauge", "Jobs.", (Sample("jobs", {"q": "x"}, 1.0),), frozenset({"jobs"})),))
    b = TextFile("b.prom", 200.5, (
        Family("jobs", "gauge", "Other help.", (Sample("jobs", {"q": "y"}, 2.0),), frozenset({"jobs"})),
        Family("runs", "counter", "Runs.", (Sample("runs_total", {}, 7.0),), frozenset({"runs_total"})),
    ))
    fams = list(TextfileCollector().families(TextfileSample((a, b), (("c.prom", "bad"),))))
    text = generate_text(families_of(fams)).decode()
    assert text == textwrap.dedent("""\
        # HELP jobs Jobs.
        # TYPE jobs gauge
        jobs{q="x"} 1.0
        jobs{q="y"} 2.0
        # HELP runs_total Runs.
        # TYPE runs_total counter
        runs_total 7.0
        # HELP host_textfile_mtime_seconds Modification time of each textfile served, in seconds since the Unix epoch.
        # TYPE host_textfile_mtime_seconds gauge
        host_textfile_mtime_seconds{file="a.prom"} 100.0
        host_textfile_mtime_seconds{file="b.prom"} 200.5
        # HELP host_textfile_scrape_error 1 if any *.prom file was refused in the last run (the agent's log names it and says why), else 0.
        # TYPE host_textfile_scrape_error gauge
        host_textfile_scrape_error 1.0
        """)
    assert generate_openmetrics(families_of(fams)).decode().count("# TYPE") == 4


def test_no_files_serves_only_the_error_flag():
    assert samples_of(TextfileCollector().families(TextfileSample((), ()))) == {("host_textfile_scrape_error", ()): 0.0}


def test_directory_sample_serves_types_help_and_mtime(tmp_path):
    path = write(tmp_path, "backup.prom", GOOD)
    os.utime(path, (1_700_000_000.25, 1_700_000_000.25))
    col = collector(tmp_path)
    fams = {f.name: f for f in col.collect()}
    assert fams["backup_duration_seconds"].type == "summary" and fams["backup_size_bytes"].type == "histogram"
    got = samples_of(fams.values())
    assert got[("host_textfile_mtime_seconds", (("file", "backup.prom"),))] == 1_700_000_000.25
    assert got[("host_textfile_scrape_error", ())] == 0
    assert got[("backup_runs_total", ())] == 12
    assert got[("backup_size_bytes_bucket", (("le", "+Inf"),))] == 12


# --------------------------------------------------------------------------
# Safety rules


def test_without_a_directory_the_collector_is_off_and_a_vanished_directory_fails(tmp_path):
    assert TextfileCollector.nothing_to_do({"directory": None}) == "no directory configured (collectors.textfile.directory)"
    assert TextfileCollector.nothing_to_do({"directory": str(tmp_path)}) is None
    config = cfgmod.load(None, load_all(), {})
    assert not config.collectors["textfile"].enabled
    assert config.collectors["textfile"].off_because == "disabled: no directory configured (collectors.textfile.directory)"
    # Built by hand without one, it says so rather than reading the current directory.
    with pytest.raises(NotAvailable, match=r"no directory configured \(collectors.textfile.directory\)"):
        TextfileCollector().sample()
    # A directory that was there at the start and went away is a failure.
    with pytest.raises(FileNotFoundError, match=f"textfile directory {tmp_path / 'nope'} does not exist"):
        collector(tmp_path / "nope").sample()


def _agent(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """The real agent on an empty config file."""
    cfg = tmp_path / "empty.yaml"
    cfg.write_text("{}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTAGENT_")}
    return subprocess.run([sys.executable, str(REPO / "run_agent.py"), "--config", str(cfg), *args], capture_output=True, text=True, timeout=60, env=env)


def test_without_a_directory_the_running_agent_shows_it_disabled_not_missing(tmp_path):
    import requests

    from support import agent_server

    out = _agent(tmp_path, "--check-config")
    assert out.returncode == 0 and "textfile" not in out.stdout, out.stdout
    with agent_server(tmp_path, "collectors: {processes: {enabled: false}}\n") as agent:
        agent.start()
        landing = requests.get(agent.base_url + "/", timeout=10).text
        body = requests.get(agent.base_url + "/metrics", timeout=10).text
    assert "<td>textfile</td><td class='disabled'>disabled: no directory configured (collectors.textfile.directory)</td>" in landing
    assert "not available on this host" not in landing.split("<td>textfile</td>", 1)[1].split("</tr>", 1)[0]
    assert 'collector="textfile"' not in body  # no available 0, no up: it is off, not missing
    assert "collector textfile" not in agent.log()
    # Switched off explicitly, it reads as any switched-off collector.
    with agent_server(tmp_path, "collectors: {processes: {enabled: false}, textfile: {enabled: false}}\n") as agent:
        agent.start()
        landing = requests.get(agent.base_url + "/", timeout=10).text
    assert "<td>textfile</td><td class='disabled'>disabled by config</td>" in landing


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_directory_that_is_not_one_is_refused_by_check_config_and_by_the_start_alike(tmp_path, kind):
    path = tmp_path / "textfile"
    if kind == "file":
        path.write_text("")
    why = "no such directory" if kind == "missing" else "not a directory"
    line = f"  - collectors.textfile.directory (from flag --collector.textfile.directory): {why}: '{path}'"
    from support import free_port

    for extra in (["--check-config"], [f"--web.listen-address=127.0.0.1:{free_port()}"]):
        out = _agent(tmp_path, f"--collector.textfile.directory={path}", *extra)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert out.stderr.splitlines() == ["invalid configuration from flags (1 problem):", line], out.stderr
    path.unlink() if kind == "file" else None
    path.mkdir()
    assert _agent(tmp_path, f"--collector.textfile.directory={path}", "--check-config").returncode == 0


def test_a_bad_file_is_refused_by_name_once_per_change_and_others_served(tmp_path, caplog):
    write(tmp_path, "a.prom", "good_a 1\n")
    write(tmp_path, "b.prom", 'broken{x="1} 1\n')
    write(tmp_path, "c.prom", "good_c 3\n")
    col = collector(tmp_path)
    caplog.set_level(logging.INFO, logger="hostagent.collectors.textfile")
    for _ in range(3):
        sample = col.sample()
    got = samples_of(col.families(sample))
    assert got[("good_a", ())] == 1 and got[("good_c", ())] == 3
    assert got[("host_textfile_scrape_error", ())] == 1
    assert ("host_textfile_mtime_seconds", (("file", "b.prom"),)) not in got
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"textfile {tmp_path / 'b.prom'} refused: not valid text format: line 1: " + warnings[0].split("line 1: ", 1)[1]]
    # A different problem is logged again; the fix is logged as a recovery.
    write(tmp_path, "b.prom", "ok 1 17\n")
    col.sample()
    col.sample()
    write(tmp_path, "b.prom", "ok 1\n")
    assert samples_of(col.collect())[("host_textfile_scrape_error", ())] == 0
    messages = [r.getMessage() for r in caplog.records]
    assert messages[1:] == [f"textfile {tmp_path / 'b.prom'} refused: ok: has a timestamp; the agent serves values as of its own read",
                            f"textfile {tmp_path / 'b.prom'} is served again"]


@pytest.mark.parametrize("text, name", [
    ("host_load1 3\n", "host_load1"),
    ("host_cpu_seconds_total{cpu=\"9\",mode=\"user\"} 1\n", "host_cpu_seconds_total"),
    ("# TYPE host_cpu_seconds gauge\nhost_cpu_seconds 1\n", "host_cpu_seconds"),
    ("# TYPE host_textfile_scrape_error gauge\nhost_textfile_scrape_error 0\n", "host_textfile_scrape_error"),
    ("hostagent_anything 1\n", "hostagent_anything"),
    ("process_cpu_seconds_total 1\n", "process_cpu_seconds_total"),
    ("python_info{version=\"1\"} 1\n", "python_info"),
    ("# TYPE host_md_disks histogram\nhost_md_disks_bucket{le=\"+Inf\"} 1\nhost_md_disks_count 1\nhost_md_disks_sum 1\n", "host_md_disks"),
])
def test_a_file_redefining_what_the_agent_serves_is_refused_by_name(tmp_path, text, name):
    write(tmp_path, "evil.prom", text)
    write(tmp_path, "fine.prom", "fine 1\n")
    sample = collector(tmp_path).sample()
    assert [f.name for f in sample.files] == ["fine.prom"]
    assert sample.refused == (("evil.prom", f"defines {name}, which the agent serves itself"),)


def test_files_that_clash_with_an_earlier_file_are_refused(tmp_path):
    write(tmp_path, "a.prom", '# TYPE jobs gauge\njobs{q="x"} 1\n')
    write(tmp_path, "b.prom", '# TYPE jobs counter\njobs 2\n')
    write(tmp_path, "c.prom", 'jobs{q="x"} 3\n')
    write(tmp_path, "d.prom", '# TYPE jobs gauge\njobs{q="y"} 4\n')
    sample = collector(tmp_path).sample()
    assert [f.name for f in sample.files] == ["a.prom", "d.prom"]
    assert dict(sample.refused) == {
        "b.prom": "family jobs is a counter here but a gauge in an earlier file",
        "c.prom": "family jobs is a unknown here but a gauge in an earlier file",
    }
    write(tmp_path, "c.prom", '# TYPE jobs gauge\njobs{q="x"} 3\n')
    assert dict(collector(tmp_path).sample().refused)["c.prom"] == "series jobs{'q': 'x'} is already served from an earlier file"
    write(tmp_path, "e.prom", "# TYPE jobs_total gauge\njobs_total 1\n# TYPE other counter\nother 1\n")
    write(tmp_path, "f.prom", "# TYPE jobs counter\njobs 1\n")
    write(tmp_path, "a.prom", "")
    write(tmp_path, "b.prom", "")
    write(tmp_path, "c.prom", "")
    write(tmp_path, "d.prom", "")
    assert dict(collector(tmp_path).sample().refused)["f.prom"] == "sample name jobs_total of family jobs belongs to family jobs_total of an earlier file"


def test_files_over_the_size_limit_are_refused(tmp_path):
    write(tmp_path, "big.prom", "".join(f"x{i:03} 10\n" for i in range(50)))
    write(tmp_path, "small.prom", "y 1\n")
    sample = collector(tmp_path, max_file_bytes=399).sample()
    assert [f.name for f in sample.files] == ["small.prom"]
    assert sample.refused == (("big.prom", "400 bytes, more than max_file_bytes (399)"),)  # 50 lines of 8 bytes
    assert [f.name for f in collector(tmp_path, max_file_bytes=400).sample().files] == ["big.prom", "small.prom"]


def test_the_sample_cap_refuses_the_file_that_would_pass_it_by_name(tmp_path):
    write(tmp_path, "a.prom", "".join(f'a{{i="{i}"}} 1\n' for i in range(4)))
    write(tmp_path, "b.prom", "".join(f'b{{i="{i}"}} 1\n' for i in range(5)))
    write(tmp_path, "c.prom", "".join(f'c{{i="{i}"}} 1\n' for i in range(2)))
    sample = collector(tmp_path, max_samples=7).sample()
    assert [f.name for f in sample.files] == ["a.prom", "c.prom"]
    assert sample.refused == (("b.prom", "its 5 samples would take this run past max_samples (7, 4 already served)"),)
    assert TextfileCollector.options["max_samples"].default == 10000


def test_special_files_hidden_files_and_other_names(tmp_path):
    os.mkfifo(tmp_path / "fifo.prom")  # opening a FIFO for reading would block
    (tmp_path / "dir.prom").mkdir()
    write(tmp_path, ".tmp.prom", "half 1\n")
    write(tmp_path, "notes.txt", "x 1\n")
    write(tmp_path, "bad.prom", "\xff 1\n".encode("latin-1").decode("latin-1"))
    (tmp_path / "bin.prom").write_bytes(b"x{a=\"\xff\"} 1\n")
    write(tmp_path, "ok.prom", "ok 1\n")
    sample = collector(tmp_path).sample()
    assert [f.name for f in sample.files] == ["ok.prom"]
    refused = dict(sample.refused)
    assert refused["fifo.prom"] == refused["dir.prom"] == "not a regular file"
    assert refused["bin.prom"] == "not UTF-8 text (byte 5)"
    assert set(refused) == {"bad.prom", "bin.prom", "dir.prom", "fifo.prom"}


def test_unreadable_file_is_refused():
    # Root reads any file, so as root the collector runs in a child process
    # that has given up root for nobody's uid, on a directory nobody may list
    # (made under /tmp itself: pytest's own tree is root's alone).
    directory = Path(tempfile.mkdtemp(prefix="hostagent-textfile-"))
    try:
        directory.chmod(0o755)
        path = write(directory, "secret.prom", "x 1\n")
        path.chmod(0)
        code = (
            "import os, sys\n"
            "from hostagent.collectors import load_all, textfile\n"
            "load_all(); textfile.reserved_names()  # every import done while still allowed\n"
            "if os.geteuid() == 0:\n"
            "    os.setgid(65534); os.setuid(65534)\n"
            "print(repr(textfile.TextfileCollector({'directory': sys.argv[1]}).sample().refused))\n"
        )
        done = subprocess.run([sys.executable, "-c", code, str(directory)], capture_output=True, text=True, timeout=60, cwd=REPO)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == repr((("secret.prom", "cannot be read: Permission denied"),))
    finally:
        shutil.rmtree(directory)


# --------------------------------------------------------------------------
# Half-written files


def test_incomplete_last_line_is_never_served(tmp_path):
    path = write(tmp_path, "half.prom", "complete 1\ncut_in_the_middle 12")
    with pytest.raises(Refused, match=r"last line has no newline at its end \(incomplete\) on 3 reads"):
        read_whole(str(path), 1000, pause=0.001)
    path.write_text("")
    text, st = read_whole(str(path), 1000)
    assert (text, st.st_mtime) == ("", path.stat().st_mtime)


def test_a_file_changing_during_the_read_is_read_again(tmp_path, monkeypatch):
    path = write(tmp_path, "moving.prom", "v 1\n")
    real_read = os.read
    changes = []

    def read_then_writer_acts(fd, n):
        data = real_read(fd, n)
        if data and len(changes) < 1:
            changes.append(1)
            with open(path, "a") as f:
                f.write("w 2\n")  # the writer appends while the agent reads
        return data

    monkeypatch.setattr(textfile.os, "read", read_then_writer_acts)
    assert read_whole(str(path), 1000, pause=0.001)[0] == "v 1\nw 2\n"
    changes.clear()
    monkeypatch.setattr(textfile, "READ_ATTEMPTS", 3)

    def always_changing(fd, n):
        data = real_read(fd, n)
        if data:  # once per read attempt: the next os.read of this attempt returns b""
            with open(path, "a") as f:
                f.write("z 3\n")
            os.lseek(fd, 0, os.SEEK_END)
        return data

    monkeypatch.setattr(textfile.os, "read", always_changing)
    with pytest.raises(Refused, match="changed while being read on 3 reads"):
        read_whole(str(path), 10_000, pause=0.001)


def test_a_concurrent_writer_in_two_halves_is_never_served_half(tmp_path):
    lines, rounds = 40, 60
    path = tmp_path / "jobs.prom"
    path.write_bytes(content(0, lines))
    writer = subprocess.Popen([sys.executable, str(REPO / "tests" / "textfile_writer.py"), str(path), str(rounds), str(lines)])
    col = collector(tmp_path)
    served = refused = 0
    try:
        deadline = time.monotonic() + 120
        while writer.poll() is None and time.monotonic() < deadline:
            sample = col.sample()
            got = {k: v for k, v in samples_of(col.families(sample)).items() if k[0] == "job_state"}
            if sample.files:
                served += 1
                assert len(got) == lines, f"a partial file was served: {len(got)} of {lines} series"
                assert len(set(got.values())) == 1, f"a mix of two writes was served: {sorted(set(got.values()))}"
            else:
                refused += 1
                assert not got and sample.refused[0][0] == "jobs.prom"
    finally:
        writer.kill()
        writer.wait()
    assert writer.returncode is not None
    assert served > 0, "the collector never got a whole file"
    # Some runs caught the writer in a 0.2 s pause, longer than the re-reads wait.
    assert refused > 0


# --------------------------------------------------------------------------
# Options and loading


def test_directory_option_checks(tmp_path):
    opts = cfgmod.schema(load_all())["collectors"]["textfile"]
    assert opts["directory"].check("") is None and opts["directory"].check(str(tmp_path)) == str(tmp_path)
    with pytest.raises(ValueError, match="no such directory: '/nonexistent/prom'"):
        opts["directory"].check("/nonexistent/prom")
    with pytest.raises(ValueError, match="must be a directory path, got 5"):
        opts["directory"].check(5)
    with pytest.raises(cfgmod.ConfigError, match="collectors.textfile.max_samples .from environment variable .*: must be between 1 and 10000000, got 0"):
        cfgmod.load(None, load_all(), environ={"HOSTAGENT_COLLECTOR_TEXTFILE_MAX_SAMPLES": "0"})


def test_the_parser_is_loaded_lightly_and_only_when_used(tmp_path):
    write(tmp_path, "a.prom", "a 1\n")
    probe = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO / 'src')!r})
        from hostagent.collectors import load_all
        from hostagent.collectors.textfile import TextfileCollector
        load_all()
        assert "prometheus_client.parser" not in sys.modules
        TextfileCollector({{"directory": {str(tmp_path)!r}}}).collect()
        assert "prometheus_client.parser" in sys.modules
        heavy = [m for m in ("prometheus_client.exposition", "http.server", "urllib.request", "ssl") if m in sys.modules]
        assert not heavy, heavy
        assert type(sys.modules["prometheus_client"]).__name__ == "_Placeholder"
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.stdout == "ok\n", out.stderr


# --------------------------------------------------------------------------
# Reuse of unchanged files


def counting_reads(monkeypatch):
    reads = []
    real = textfile.read_whole

    def read(path, *args, **kwargs):
        reads.append(os.path.basename(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(textfile, "read_whole", read)
    return reads


def test_a_settled_unchanged_file_is_not_read_again(tmp_path, monkeypatch):
    reads = counting_reads(monkeypatch)
    old = time.time() - 60
    path = write(tmp_path, "slow.prom", "jobs 1\n")
    os.utime(path, (old, old))
    bad = write(tmp_path, "bad.prom", "bad{ 1\n")
    os.utime(bad, (old, old))
    fresh = write(tmp_path, "fresh.prom", "fresh 1\n")  # modified just now: may still be written to
    col = collector(tmp_path)
    for _ in range(3):
        sample = col.sample()
        assert [f.name for f in sample.files] == ["fresh.prom", "slow.prom"]
        assert [name for name, _ in sample.refused] == ["bad.prom"]
    assert sorted(reads) == ["bad.prom", "fresh.prom", "fresh.prom", "fresh.prom", "slow.prom"]
    # Rewritten with the same size and given back its old mtime: the change time gives it away.
    path.write_text("jobs 2\n")
    os.utime(path, (old, old))
    assert samples_of(col.collect())[("jobs", ())] == 2
    assert reads.count("slow.prom") == 2


def test_a_removed_file_is_forgotten(tmp_path):
    old = time.time() - 60
    path = write(tmp_path, "gone.prom", "gone 1\n")
    os.utime(path, (old, old))
    col = collector(tmp_path)
    assert [f.name for f in col.sample().files] == ["gone.prom"]
    path.unlink()
    assert col.sample() == TextfileSample((), ())
    assert col._known == {}

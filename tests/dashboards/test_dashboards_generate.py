"""`hostagent dashboards [--check]`: the committed JSON is what the code makes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from support import REPO

from hostagent.dashboards import generate

COMMITTED = REPO / "grafana" / "dashboards"


def test_committed_dashboards_are_current(capsys: pytest.CaptureFixture) -> None:
    assert generate.DEFAULT_OUTPUT == COMMITTED
    status = generate.main(["--check"])
    out = capsys.readouterr()
    assert status == 0, out.err
    assert out.out.count(" is up to date\n") == 9


def test_generate_then_check(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert generate.main(["--output", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(p.name for p in COMMITTED.glob("*.json"))
    for name in names:
        board = json.loads((tmp_path / name).read_text())
        assert board["uid"] == f"hostagent-{name[:-5]}"
    capsys.readouterr()
    # A second run changes nothing and says so, file by file.
    assert generate.main(["--output", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{tmp_path / name} is up to date" for name in generate.expected_files()]
    assert generate.main(["--check", "--output", str(tmp_path)]) == 0


def test_check_reports_stale_missing_and_extra_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    generate.main(["--output", str(tmp_path)])
    cpu = tmp_path / "cpu.json"
    cpu.write_text(cpu.read_text().replace('"10s"', '"1m"', 1))
    (tmp_path / "memory.json").unlink()
    (tmp_path / "old.json").write_text("{}")
    capsys.readouterr()
    assert generate.main(["--check", "--output", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{cpu} is out of date; run `hostagent dashboards`" in err
    assert f"{tmp_path / 'memory.json'} is missing" in err
    assert f"{tmp_path / 'old.json'} is not made by the generator" in err


def test_thresholds_file_feeds_the_output(tmp_path: Path) -> None:
    doc = yaml.safe_load((REPO / "config" / "alerting.yaml").read_text())
    doc["alerts"]["disk_io_utilisation"]["levels"] = [{"severity": "critical", "threshold": 0.42, "for": "1m"}]
    th = tmp_path / "alerting.yaml"
    th.write_text(yaml.safe_dump(doc))
    out = tmp_path / "out"
    assert generate.main(["--thresholds", str(th), "--output", str(out)]) == 0
    disk = json.loads((out / "disk.json").read_text())
    panel = next(p for p in disk["panels"] if p["title"] == "Disk utilisation")
    assert panel["fieldConfig"]["defaults"]["thresholds"]["steps"] == [{"color": "green", "value": None}, {"color": "red", "value": 0.42}]
    # ...and the committed dashboards no longer match that file.
    assert generate.main(["--check", "--thresholds", str(th)]) == 1


def test_bad_thresholds_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    th = tmp_path / "alerting.yaml"
    th.write_text("alerts:\n  cpu_usage: {unit: furlongs}\n")
    assert generate.main(["--thresholds", str(th), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hostagent dashboards: ")
    assert "alerts.cpu_usage.unit" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    assert generate.main(["--thresholds", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err

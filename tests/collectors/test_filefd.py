"""Tests of the filefd collector."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import assert_well_formed, samples_of

from hostagent.collectors.base import Paths
from hostagent.collectors.filefd import FilefdCollector, parse_file_nr
from hostagent.promclient import families_of, generate_text

FIXTURE_PROC = Path(__file__).parent / "fixtures" / "filefd" / "proc"


def test_parse_fixture_takes_first_and_third_figures():
    assert parse_file_nr((FIXTURE_PROC / "sys" / "fs" / "file-nr").read_text()) == (2208, 9223372036854775807)


@pytest.mark.parametrize("text, message", [
    ("12 0\n", "expected three numbers"),
    ("12 0 many\n", "maximum is not a whole number: 'many'"),
])
def test_parse_rejects_garbage(text, message):
    with pytest.raises(ValueError, match=message):
        parse_file_nr(text)


def test_families_and_the_unlimited_maximum_renders():
    collector = FilefdCollector(paths=Paths(procfs=str(FIXTURE_PROC)))
    fams = list(collector.families(collector.sample()))
    assert samples_of(fams) == {("host_filefd_allocated", ()): 2208, ("host_filefd_maximum", ()): 9223372036854775807}
    assert b"host_filefd_maximum 9.223372036854776e+18\n" in generate_text(families_of(fams))


def test_missing_file_is_a_failure_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="file-nr"):
        FilefdCollector(paths=Paths(procfs=str(tmp_path))).sample()


def test_live_sample_on_this_machine():
    got = samples_of(FilefdCollector().collect())
    assert_well_formed(FilefdCollector, got)
    assert 0 < got[("host_filefd_allocated", ())] < got[("host_filefd_maximum", ())]

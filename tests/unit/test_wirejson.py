"""client/wirejson.loads drives _json's C scanner itself: it must answer exactly as json.loads."""
from __future__ import annotations

import json
import math

import pytest

from pyvirt.client import wirejson

DOCS = [
    '{"domains": [{"id": 1, "name": "demo", "state": "running", "autostart": false, "title": null}]}',
    '  [1, -2, 3.5, 1e3, -0.0, 12345678901234567890]\n',
    '"caf\\u00e9 \\ud83d\\ude00 \\"quoted\\" \\\\ \\/ \\t"',
    '{"nested": {"a": [[], {}, [{"b": true}]]}, "dup": 1, "dup": 2}',
    "\t\r\n null \t",
    '{"é": "ünïcode as is"}',
    '[Infinity, -Infinity]',
]


@pytest.mark.parametrize("doc", DOCS)
def test_loads_is_json_loads(doc):
    assert wirejson.loads(doc) == json.loads(doc)
    assert wirejson.loads(doc.encode()) == json.loads(doc.encode())


def test_nan_is_read_as_json_reads_it():
    assert math.isnan(wirejson.loads("NaN"))


@pytest.mark.parametrize("bad", ["", "   ", "{", '{"a": 1,}', "[1,]", "1 2", '{"a": 1} x', "nul", '"\x01"',
                                 b"\xff\xfe", "'single'"])
def test_what_json_refuses_is_a_value_error(bad):
    with pytest.raises(ValueError):
        json.loads(bad)
    with pytest.raises(ValueError):
        wirejson.loads(bad)


def test_without_the_c_scanner_it_is_json_loads(monkeypatch):
    monkeypatch.setattr(wirejson, "_scan", None)
    assert wirejson.loads(DOCS[0]) == json.loads(DOCS[0])
    with pytest.raises(ValueError):
        wirejson.loads("[1,]")


def test_dumps_is_json_dumps():
    value = {"xml": "<domain/>", "n": [1, 2.5, None, True]}
    assert wirejson.dumps(value) == json.dumps(value)
    assert wirejson.dumps(value, indent=2) == json.dumps(value, indent=2)

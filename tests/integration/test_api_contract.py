"""The real pyvirtd and docs/openapi.yaml: it serves the document, and the routes no other
integration test reaches go through the checked client here (the conftest's trace fixture
checks every exchange of this module against the document, as for every test)."""
from __future__ import annotations

import json
import threading

import pytest
import yaml

from tests.guest.build import GuestImage
from tests.integration.conftest import DaemonHandle, domain_xml
from tests.openapi_check import DOCUMENT

pytestmark = pytest.mark.integration

NET_XML = """<network>
  <name>pvapinet</name>
  <bridge name='pvapib0' stp='off' delay='0'/>
  <ip address='10.127.0.1' prefix='24'/>
</network>
"""


def test_daemon_serves_the_document(daemon: DaemonHandle) -> None:
    with daemon.connect() as conn:
        served = conn.request("GET", "/openapi.json")
    assert served == json.loads(json.dumps(yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))))


def test_domain_event_stream_and_history(daemon: DaemonHandle, guest: GuestImage) -> None:
    """Define and undefine a domain (no boot): its own stream and the history carry both events."""
    with daemon.connect() as conn:
        dom = conn.define_xml(domain_xml("pvapi-ev", guest))
        stream = dom.events()
        seen: list[dict[str, object]] = []

        def follow() -> None:
            for event in stream:
                seen.append(event)
                if event["event"] == "undefined":
                    return

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        dom.undefine()
        reader.join(10)
        stream.close()
        assert [e["event"] for e in seen] == ["undefined"]
        history = conn.event_history("pvapi-ev")
    assert [e["event"] for e in history][-2:] == ["defined", "undefined"]
    assert {e["uuid"] for e in history} == {seen[0]["uuid"]}


def test_network_autostart_and_edit(daemon: DaemonHandle) -> None:
    """net-autostart and net-edit of a defined (never started) network: nothing touches the host."""
    with daemon.connect() as conn:
        net = conn.define_network(NET_XML)
        try:
            assert net.set_autostart(True).last["autostart"] is True
            edited = NET_XML.replace("10.127.0.1", "10.127.0.2")
            net.set_xml(edited)
            assert "10.127.0.2" in net.xml(inactive=True)
            assert net.set_autostart(False).last["autostart"] is False
        finally:
            net.undefine()

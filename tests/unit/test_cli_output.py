"""The `pyvirt` CLI's exact text against a FAKE pyvirtd (tests/unit/fakepyvirtd.py).

A fake because the real daemon is written at the same time; it is a real HTTP
server on a real unix socket, so the client's transport is exercised for real.
Layouts are virsh 9.0's (checked against `virsh -c test:///default`).
"""
from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest

from pyvirt.cli.main import COMMANDS, main
from tests.unit.fakepyvirtd import FakeState, fake_daemon

DEMO_UUID = "6695eb01-f6a4-8304-79aa-97f2502e193f"


@pytest.fixture
def daemon() -> Iterator[tuple[str, FakeState]]:
    with fake_daemon() as (uri, state):
        yield uri, state


def run(uri: str, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(["-c", uri, *argv], stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def test_list_one_running_domain(daemon):
    uri, st = daemon
    st.add("demo", id=1, state="running", reason="booted")
    assert run(uri, "list") == (0, " Id   Name   State\n----------------------\n 1    demo   running\n\n", "")


def test_list_all_pads_to_widest_cell(daemon):
    uri, st = daemon
    st.add("demo", id=1, state="running")
    st.add("web-server-01")
    st.add("db", id=2, state="paused")
    rc, out, err = run(uri, "list", "--all")
    assert rc == 0 and err == ""
    assert out == (
        " Id   Name            State\n"
        "--------------------------------\n"
        " 1    demo            running\n"
        " 2    db              paused\n"
        " -    web-server-01   shut off\n"
        "\n"
    )


def test_list_without_domains_and_inactive_filter(daemon):
    uri, st = daemon
    assert run(uri, "list", "--all")[1] == " Id   Name   State\n--------------------\n\n"
    st.add("demo", id=1, state="running")
    st.add("web-server-01")
    assert run(uri, "list", "--inactive")[1].splitlines()[2] == " -    web-server-01   shut off"
    assert "demo" not in run(uri, "list", "--inactive")[1]


def test_list_quiet_has_no_header_nor_blank_line(daemon):
    uri, st = daemon
    st.add("demo", id=1, state="running")
    st.add("web-server-01")
    assert run(uri, "-q", "list", "--all")[1] == " 1   demo            running\n -   web-server-01   shut off\n"


def test_list_title_column(daemon):
    uri, st = daemon
    st.add("demo", id=1, state="running")
    assert run(uri, "list", "--title")[1] == (
        " Id   Name   State     Title\n------------------------------\n 1    demo   running   \n\n"
    )


@pytest.mark.parametrize("opts, names", [
    (["--state-running"], ["demo"]),
    (["--state-shutoff"], ["web-server-01"]),
    (["--state-paused", "--state-running"], ["demo", "db"]),
    (["--state-other"], []),
    (["--all", "--autostart"], ["db"]),
    (["--all", "--no-autostart"], ["demo", "web-server-01"]),
    (["--all", "--transient"], ["demo"]),
    (["--persistent"], ["db"]),
])
def test_list_filters(daemon, opts, names):
    uri, st = daemon
    st.add("demo", id=1, state="running", persistent=False)
    st.add("db", id=2, state="paused", autostart=True)
    st.add("web-server-01")
    rc, out, _ = run(uri, "list", "--name", *opts)
    assert rc == 0
    assert out == "".join(n + "\n" for n in names) + "\n"


def test_list_name_uuid_id_columns(daemon):
    uri, st = daemon
    st.add("demo", id=1, state="running")
    st.add("web-server-01")
    assert run(uri, "list", "--all", "--uuid", "--name")[1] == (
        f"{DEMO_UUID} demo\n54e8cf73-d92b-4e0d-a969-8a88ad18b0b3 web-server-01\n\n"
    )
    assert run(uri, "list", "--all", "--id")[1] == "1\n\n"


def test_list_json_is_an_array_of_summaries(daemon):
    uri, st = daemon
    st.add("demo", id=1, state="running", reason="booted")
    st.add("web-server-01")
    for argv in (["--json", "list", "--all"], ["list", "--all", "-o", "json"], ["-o", "json", "list", "--all"]):
        rc, out, err = run(uri, *argv)
        assert (rc, err) == (0, "")
        data = json.loads(out)
        assert [d["name"] for d in data] == ["demo", "web-server-01"]
        assert data[0] == {"id": 1, "name": "demo", "uuid": DEMO_UUID, "state": "running", "reason": "booted",
                           "persistent": True, "autostart": False}


def test_dominfo_running_layout(daemon):
    uri, st = daemon
    st.add("demo", id=1, state="running")
    assert run(uri, "dominfo", "demo") == (0, (
        "Id:             1\n"
        "Name:           demo\n"
        f"UUID:           {DEMO_UUID}\n"
        "OS Type:        hvm\n"
        "State:          running\n"
        "CPU(s):         1\n"
        "CPU time:       1.2s\n"
        "Max memory:     262144 KiB\n"
        "Used memory:    262144 KiB\n"
        "Persistent:     yes\n"
        "Autostart:      disable\n"
        "Managed save:   no\n"
        "Security model: none\n"
        "Security DOI:   0\n"
        "Accelerator:    tcg\n"
        "CPU note:       KVM is not usable on this host; guests run under TCG emulation\n"
        "\n"
    ), "")


def test_dominfo_inactive_has_dash_id_and_no_cpu_time(daemon):
    uri, st = daemon
    st.add("demo", autostart=True)
    out = run(uri, "dominfo", "--domain", "demo")[1]
    assert out.startswith("Id:             -\nName:           demo\n")
    assert "CPU time:" not in out
    assert "Autostart:      enable\n" in out


def test_domstate_domid_domname_domuuid(daemon):
    uri, st = daemon
    st.add("demo", id=3, state="running", reason="booted")
    st.add("web-server-01")
    assert run(uri, "domstate", "demo")[1] == "running\n\n"
    assert run(uri, "domstate", "--reason", "demo")[1] == "running (booted)\n\n"
    assert run(uri, "domid", "demo")[1] == "3\n\n"
    assert run(uri, "domid", "web-server-01")[1] == "-\n\n"
    assert run(uri, "domname", "3")[1] == "demo\n\n"
    assert run(uri, "domuuid", "demo")[1] == f"{DEMO_UUID}\n\n"
    assert json.loads(run(uri, "--json", "domstate", "demo")[1]) == {"state": "running", "reason": "booted"}


@pytest.mark.parametrize("argv, message", [
    (["suspend", "demo"], "Domain 'demo' suspended"),
    (["reboot", "demo"], "Domain 'demo' is being rebooted"),
    (["reset", "1"], "Domain '1' was reset"),
    (["shutdown", "demo"], "Domain 'demo' is being shutdown"),
    (["destroy", DEMO_UUID], f"Domain '{DEMO_UUID}' destroyed"),
    (["autostart", "demo"], "Domain 'demo' marked as autostarted"),
    (["autostart", "--disable", "demo"], "Domain 'demo' unmarked as autostarted"),
    (["undefine", "demo"], "Domain 'demo' has been undefined"),
])
def test_lifecycle_messages(daemon, argv, message):
    uri, st = daemon
    st.add("demo", id=1, state="running")
    assert run(uri, *argv) == (0, message + "\n\n", "")


def test_quiet_hides_messages(daemon):
    uri, st = daemon
    st.add("demo", id=1, state="running")
    assert run(uri, "-q", "suspend", "demo") == (0, "", "")
    assert st.domains["demo"]["state"] == "paused"


def test_start_uses_real_name_and_resume(daemon):
    uri, st = daemon
    st.add("demo")
    assert run(uri, "start", "demo", "--paused") == (0, "Domain 'demo' started\n\n", "")
    assert st.domains["demo"]["state"] == "paused"
    assert st.requests[-1] == ("POST", "/v1/domains/demo/start", {"paused": True})
    assert run(uri, "resume", "demo")[1] == "Domain 'demo' resumed\n\n"


def test_shutdown_timeout_reports_destroy(daemon):
    uri, st = daemon
    st.add("demo", id=1, state="running")
    rc, out, _ = run(uri, "shutdown", "demo", "--timeout", "2.5")
    assert rc == 0
    assert out == "Domain 'demo' did not shut down within 2.5 s and was destroyed\n\n"
    assert st.requests[-1] == ("POST", "/v1/domains/demo/shutdown", {"timeout": 2.5})


def test_define_and_create_from_file(daemon, tmp_path):
    uri, st = daemon
    xml = tmp_path / "vm.xml"
    xml.write_text("<domain type='qemu'><name>fresh</name></domain>")
    assert run(uri, "define", str(xml)) == (0, f"Domain 'fresh' defined from {xml}\n\n", "")
    assert st.domains["fresh"]["persistent"] is True
    xml.write_text("<domain type='qemu'><name>temp</name></domain>")
    assert run(uri, "create", str(xml), "--paused") == (0, f"Domain 'temp' created from {xml}\n\n", "")
    assert st.domains["temp"]["state"] == "paused" and st.domains["temp"]["persistent"] is False
    data = json.loads(run(uri, "--json", "define", "--file", str(xml))[1])
    assert data["result"] == f"Domain 'temp' defined from {xml}"
    assert data["domain"]["name"] == "temp"


def test_define_missing_file_and_bad_xml(daemon, tmp_path):
    uri, _ = daemon
    missing = tmp_path / "nope.xml"
    assert run(uri, "define", str(missing)) == (
        1, "\n", f"error: Failed to open file '{missing}': No such file or directory\n")
    bad = tmp_path / "bad.xml"
    bad.write_text("not xml")
    rc, out, err = run(uri, "define", str(bad))
    assert (rc, out) == (1, "\n")
    assert err == "error: domain XML line 1: not a <domain> document with a <name>\n"


def test_dumpxml_and_capabilities(daemon):
    uri, st = daemon
    st.add("demo")
    out = run(uri, "dumpxml", "demo", "--inactive")[1]
    assert out.startswith("<domain type='qemu'>\n  <name>demo</name>\n") and out.endswith("</domain>\n\n")
    assert st.requests[-1][1] == "/v1/domains/demo/xml?inactive=1"
    assert run(uri, "capabilities")[1] == "<capabilities>\n  <host/>\n</capabilities>\n\n"


def test_host_commands(daemon):
    uri, _ = daemon
    assert run(uri, "hostname") == (0, "fakehost\n\n", "")
    assert run(uri, "uri") == (0, f"{uri}\n\n", "")
    assert run(uri, "version")[1] == (
        "Compiled against library: pyvirt 0.1.0\nUsing library: pyvirt 0.1.0\n"
        "Using API: QEMU 0.1.0\nRunning hypervisor: QEMU 7.2.22\n\n"
    )
    assert run(uri, "version", "--daemon")[1].endswith("Running against daemon: 0.1.0\n\n")
    rc, out, _ = run(uri, "host-validate")
    assert rc == 0
    assert out.splitlines()[0] == (
        "  QEMU: Checking for hardware virtualization" + " " * 33 + ": WARN (Only emulated CPUs are available)"
    )
    assert out.splitlines()[1].endswith("/dev/net/tun exists" + " " * 31 + ": PASS")


def test_runtime_error_goes_to_stderr_with_exit_1(daemon):
    uri, st = daemon
    st.add("demo")
    assert run(uri, "dominfo", "ghost") == (
        1, "\n", "error: domain 'ghost' not found; `pyvirt list --all` shows the defined domains\n"
    )
    rc, out, err = run(uri, "suspend", "demo")
    assert (rc, out) == (1, "\n")
    assert err == "error: domain 'demo' is not running; start it first with `pyvirt start demo`\n"


def test_error_as_json_on_stderr(daemon):
    uri, _ = daemon
    rc, out, err = run(uri, "--json", "dominfo", "ghost")
    assert (rc, out) == (1, "")
    assert json.loads(err)["error"]["code"] == "not-found"


@pytest.mark.parametrize("argv, message", [
    (["foo"], "unknown command: 'foo'"),
    (["list", "--bogus"], "command 'list' doesn't support option --bogus"),
    (["dominfo"], "command 'dominfo' requires <domain> option"),
    (["dominfo", "a", "b"], "unexpected data 'b'"),
    (["dominfo", "--domain"], "expected syntax: --domain <string>"),
    (["list", "--all", "--all"], "option --all already seen"),
    (["list", "--name=x"], "invalid '=' after option --name"),
    (["shutdown", "demo", "--timeout", "soon"],
     "Numeric value 'soon' for <timeout> option is malformed or out of range"),
    (["--bogus", "list"], "unsupported option '--bogus'. See --help."),
    (["-o", "yaml", "list"], "unsupported output format 'yaml': use text or json"),
])
def test_usage_errors_print_nothing_on_stdout(daemon, argv, message):
    uri, _ = daemon
    assert run(uri, *argv) == (1, "", f"error: {message}\n")


def test_connect_option_needs_argument():
    out, err = io.StringIO(), io.StringIO()
    assert main(["-c"], stdout=out, stderr=err) == 1
    assert err.getvalue() == "error: option '-c'/'--connect' requires an argument\n"


def test_connection_refused_message(tmp_path):
    sock = tmp_path / "pyvirtd.sock"
    rc, out, err = run(f"unix://{sock}", "list")
    assert (rc, out) == (1, "")
    assert err == (f"error: failed to connect to the daemon at unix://{sock}: no such file "
                   "(is pyvirtd running and listening there?)\n")


def test_connection_refused_on_a_dead_socket(tmp_path):
    import socket

    path = tmp_path / "d" / "run/pyvirt/pyvirtd.sock"
    path.parent.mkdir(parents=True)
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))  # bound, never listening: connect() is refused
    try:
        rc, _, err = run(f"unix://{path}", "list")
    finally:
        s.close()
    assert rc == 1
    assert err == (f"error: failed to connect to the daemon at unix://{path}: connection refused "
                   f"(is pyvirtd running? start it with `pyvirtd --root {tmp_path / 'd'} -d`)\n")


def test_help_lists_every_command_grouped():
    out = io.StringIO()
    assert main(["help"], stdout=out, stderr=io.StringIO()) == 0
    text = out.getvalue()
    assert text.startswith("Grouped commands:\n\n Domain Management (help keyword 'domain'):\n")
    assert " Domain Monitoring (help keyword 'monitor'):\n" in text
    assert " Host and Hypervisor (help keyword 'host'):\n" in text
    assert "    list                           list domains\n" in text
    for name in COMMANDS:
        assert f"\n    {name} " in text, name
    assert text.endswith("\n\n\n")
    for name in ("define", "undefine", "create", "start", "shutdown", "destroy", "reboot", "reset", "suspend",
                 "resume", "list", "dominfo", "domstate", "domid", "domname", "domuuid", "dumpxml", "edit",
                 "console", "autostart", "version", "uri", "hostname", "capabilities", "host-validate", "help"):
        assert name in COMMANDS


def test_help_command_and_group():
    out = io.StringIO()
    assert main(["help", "domstate"], stdout=out, stderr=io.StringIO()) == 0
    assert out.getvalue() == (
        "  NAME\n    domstate - domain state\n\n  SYNOPSIS\n    domstate <domain> [--reason]\n\n"
        "  DESCRIPTION\n    Returns state about a domain.\n\n"
        "  OPTIONS\n    [--domain] <string>  domain name, id or uuid\n"
        "    --reason         also print reason for the state\n\n\n"
    )
    out = io.StringIO()
    assert main(["help", "monitor"], stdout=out, stderr=io.StringIO()) == 0
    assert out.getvalue() == (
        " Domain Monitoring (help keyword 'monitor'):\n"
        "    domblkinfo                     domain block device size information\n"
        "    domblklist                     list all domain blocks\n"
        "    domblkstat                     get device block stats for a domain\n"
        "    domif-getlink                  get link state of a virtual interface\n"
        "    domifaddr                      Get network interfaces' addresses for a running domain\n"
        "    domiflist                      list all domain virtual interfaces\n"
        "    domifstat                      get network interface stats for a domain\n"
        "    dominfo                        domain information\n"
        "    dommemstat                     get memory statistics for a domain\n"
        "    domstate                       domain state\n"
        "    domstats                       get statistics about one or multiple domains\n"
        "    list                           list domains\n"
        "    top                            live view of the domains' CPU, memory, disk and network (like virt-top)\n\n"
    )
    err = io.StringIO()
    assert main(["help", "nope"], stdout=io.StringIO(), stderr=err) == 1
    assert err.getvalue() == "error: command or command group 'nope' doesn't exist\n"


def test_version_flags():
    out = io.StringIO()
    assert main(["--version"], stdout=out, stderr=io.StringIO()) == 0
    assert out.getvalue() == "0.1.0\n"

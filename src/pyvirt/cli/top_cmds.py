"""`pyvirt top`: a live view of the domains like virt-top, on domstats' figures.

Each refresh is one domstats call (the daemon samples every running domain in
one QMP round trip each); rates are the difference between two refreshes.
Interactive on a terminal (curses: P M T N D I sort, q quits), or ``--batch``
frames on stdout for scripts, ``--iterations N`` of them.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgument
from .spec import BOOL, INT, NUMBER, STRING, Command, Opt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .context import Ctx

GROUPS = ["state", "cpu-total", "balloon", "interface", "block"]
SORTS = {"cpu": "%CPU", "mem": "%MEM", "time": "TIME", "id": "ID", "name": "NAME", "disk": "RDRQ", "net": "RXBY"}
KEYS = {ord("P"): "cpu", ord("M"): "mem", ord("T"): "time", ord("N"): "id", ord("D"): "disk", ord("I"): "net"}
STATE_LETTERS = {1: "R", 2: "B", 3: "P", 4: "D", 5: "O", 6: "X", 7: "S"}
HEADER = f"{'ID':>5} S {'RDRQ':>5} {'WRRQ':>5} {'RXBY':>7} {'TXBY':>7} {'%CPU':>5} {'%MEM':>5} {'TIME':>10}  NAME"


@dataclass
class Row:
    """One domain's figures for one frame (rates per second over the last interval)."""

    id: int | None
    name: str
    state: str
    active: bool
    rdrq: float = 0.0
    wrrq: float = 0.0
    rxby: float = 0.0
    txby: float = 0.0
    cpu: float = 0.0
    mem: float = 0.0
    mem_kib: int = 0
    cpu_ns: int = 0

    def sort_key(self, by: str) -> Any:
        return {"cpu": -self.cpu, "mem": -self.mem, "time": -self.cpu_ns, "id": self.id or 0, "name": self.name,
                "disk": -(self.rdrq + self.wrrq), "net": -(self.rxby + self.txby)}[by]


def _total(stats: dict[str, Any], prefix: str, count_key: str, field: str) -> int:
    return sum(int(stats.get(f"{prefix}.{i}.{field}", 0)) for i in range(int(stats.get(count_key, 0))))


def _rate(old: dict[str, Any], now: dict[str, Any], key: str, seconds: float) -> float:
    """Per second between two readings; 0 where there is no earlier one (or the domain just started)."""
    before, after = old.get(key), now.get(key)
    if before is None or after is None or "cpu.time" not in old or seconds <= 0:
        return 0.0
    return float(max(after - before, 0)) / seconds


def rows(prev: dict[str, dict[str, Any]], cur: list[dict[str, Any]], seconds: float, host_cpus: int,
         host_kib: int) -> list[Row]:
    """Frame rows from two domstats readings ``seconds`` apart (``prev`` by uuid; empty: no rates yet)."""
    now = counters_of(cur)
    out = []
    for rec in cur:
        s = rec["stats"]
        old, new = prev.get(rec["uuid"], {}), now[rec["uuid"]]
        active = "cpu.time" in s
        mem = int(s.get("balloon.current", 0)) if active else 0
        out.append(Row(
            id=rec.get("id"), name=rec["name"], state=STATE_LETTERS.get(int(s.get("state.state", 0)), "?"),
            active=active, rdrq=_rate(old, new, "rdrq", seconds), wrrq=_rate(old, new, "wrrq", seconds),
            rxby=_rate(old, new, "rxby", seconds), txby=_rate(old, new, "txby", seconds),
            cpu=_rate(old, new, "cpu.time", seconds) / 1e9 / max(host_cpus, 1) * 100,
            mem=mem / host_kib * 100 if host_kib else 0.0, mem_kib=mem, cpu_ns=int(s.get("cpu.time", 0))))
    return out


def counters_of(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What the next frame's rates are computed against, by uuid."""
    out = {}
    for rec in records:
        s = rec["stats"]
        out[rec["uuid"]] = {"cpu.time": float(s["cpu.time"]) if "cpu.time" in s else None,
                            "rdrq": float(_total(s, "block", "block.count", "rd.reqs")),
                            "wrrq": float(_total(s, "block", "block.count", "wr.reqs")),
                            "rxby": float(_total(s, "net", "net.count", "rx.bytes")),
                            "txby": float(_total(s, "net", "net.count", "tx.bytes"))}
        if out[rec["uuid"]]["cpu.time"] is None:
            del out[rec["uuid"]]["cpu.time"]
    return out


def _human(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale * 10:
            return f"{n / scale:.0f}{unit}"
    return f"{n:.0f}"


def _cpu_time(ns: int) -> str:
    seconds = ns / 1e9
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)}:{secs:05.2f}"


def frame(frame_rows: list[Row], *, node: dict[str, Any], sort: str, clock: str, width: int = 80) -> list[str]:
    """The screen (or one batch frame) as lines: summary, header, active domains sorted, inactive ones last."""
    active = sorted((r for r in frame_rows if r.active), key=lambda r: r.sort_key(sort))
    inactive = sorted((r for r in frame_rows if not r.active), key=lambda r: r.name)
    running = sum(1 for r in active if r.state == "R")
    paused = sum(1 for r in active if r.state == "P")
    cpu = sum(r.cpu for r in active)
    guest_mib = sum(r.mem_kib for r in active) // 1024
    lines = [
        f"pyvirt top {clock} - {node['model']} {node['cpus']}CPU {node['mhz']}MHz {node['memory_kib'] // 1024}MB",
        (f"{len(frame_rows)} domains, {len(active)} active, {running} running, {paused} paused, "
         f"{len(inactive)} inactive"),
        f"CPU: {cpu:.1f}%  Mem: {guest_mib} MB by guests  (sorted by {SORTS[sort]})",
        "",
        HEADER,
    ]
    for r in active:
        lines.append(f"{r.id if r.id is not None else '-':>5} {r.state} {_human(r.rdrq):>5} {_human(r.wrrq):>5} "
                     f"{_human(r.rxby):>7} {_human(r.txby):>7} {r.cpu:5.1f} {r.mem:5.1f} {_cpu_time(r.cpu_ns):>10}"
                     f"  {r.name}")
    for r in inactive:
        lines.append(f"{'-':>5}{'':>58}({r.name})")
    return [line[:width] for line in lines]


class Sampler:
    """Reads domstats, keeps the previous reading, makes rows."""

    def __init__(self, ctx: Ctx) -> None:
        self.conn = ctx.conn
        self.node = self.conn.node_info()
        self.prev: dict[str, dict[str, Any]] = {}
        self.when = 0.0

    def sample(self) -> list[Row]:
        records = self.conn.domain_stats(groups=GROUPS)
        ids = {d.uuid: d.id for d in self.conn.list_domains()}
        for rec in records:
            rec["id"] = ids.get(rec["uuid"])
        now = time.monotonic()
        out = rows(self.prev, records, now - self.when, self.node["cpus"], self.node["memory_kib"])
        self.prev, self.when = counters_of(records), now
        return out


def batch(ctx: Ctx, sampler: Sampler, iterations: int, delay: float, sort: str) -> None:
    out = ctx.out
    sampler.sample()
    for i in range(iterations):
        time.sleep(delay)
        lines = frame(sampler.sample(), node=sampler.node, sort=sort, clock=time.strftime("%H:%M:%S"), width=200)
        out.stdout.write(("\n" if i else "") + "\n".join(lines) + "\n")
        out.stdout.flush()


def interactive(sampler: Sampler, iterations: int | None, delay: float, sort: str) -> None:
    import curses

    def loop(screen: Any) -> None:
        curses.curs_set(0)
        screen.timeout(int(delay * 1000))
        current = sort
        shown = 0
        sampler.sample()
        while True:
            key = screen.getch()
            if key in (ord("q"), ord("Q")):
                return
            current = KEYS.get(key, current)
            height, width = screen.getmaxyx()
            lines = frame(sampler.sample(), node=sampler.node, sort=current, clock=time.strftime("%H:%M:%S"),
                          width=width - 1)
            screen.erase()
            for y, line in enumerate(lines[:height - 1]):
                screen.addstr(y, 0, line, curses.A_REVERSE if y == 4 else curses.A_NORMAL)
            screen.refresh()
            shown += 1
            if iterations is not None and shown >= iterations:
                return

    curses.wrapper(loop)


def cmd_top(ctx: Ctx, a: dict[str, Any]) -> None:
    sort = a["sort"] or "cpu"
    if sort not in SORTS:
        raise InvalidArgument(f"unknown sort order '{sort}'; use {', '.join(SORTS)}")
    delay = a["delay"] if a["delay"] is not None else 3.0
    if not 0.1 <= delay <= 3600:
        raise InvalidArgument(f"delay {delay} s is out of range; give 0.1 to 3600 seconds")
    if a["iterations"] is not None and a["iterations"] < 1:
        raise InvalidArgument("--iterations must be 1 or more")
    if ctx.out.json:
        raise InvalidArgument("top draws a screen; for JSON use `pyvirt --json domstats`")
    sampler = Sampler(ctx)
    ctx.out.blank_after = False
    if a["batch"]:
        batch(ctx, sampler, a["iterations"] or 1, delay, sort)
        return
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise InvalidArgument("top needs a terminal; run it in one, or use --batch (with --iterations N)")
    interactive(sampler, a["iterations"], delay, sort)


COMMANDS = (
    Command("top", "monitor", "live view of the domains' CPU, memory, disk and network (like virt-top)", cmd_top,
            (Opt("batch", BOOL, "print frames on stdout instead of drawing a screen"),
             Opt("iterations", INT, "stop after this many refreshes (batch: 1 by default)"),
             Opt("delay", NUMBER, "seconds between refreshes (default 3)"),
             Opt("sort", STRING, "cpu (default), mem, time, id, name, disk or net")),
            "Keys: P sort by %CPU, M by %MEM, T by CPU time, N by id, D by disk, I by network, q quits.\n"
            "%CPU is of the whole host (100% = every CPU busy); rates are per second over the last refresh."),
)

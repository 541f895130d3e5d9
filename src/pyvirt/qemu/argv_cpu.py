"""-cpu: the CPU model, its features, and the enlightenments only an accelerator provides.

<features><hyperv> enlightenments, <clock><timer name='hypervclock'/>, <kvm> hints and the PMU are
CPU properties (hv-relaxed=on, hv-time=on, kvm=off, pmu=off). KVM implements them; under TCG
QEMU has no Hyper-V or KVM paravirtual interface to give the guest, so they are left off and a
note says so (as host-passthrough runs as 'max' under TCG).
"""
from __future__ import annotations

from ..errors import InvalidArgument, UnsupportedConfig
from ..model.domain import HyperV
from .argv_common import Build
from .argv_render import Option

# libvirt's <hyperv> names -> QEMU's x86 CPU properties
HV_PROPS = {
    "relaxed": "hv-relaxed", "vapic": "hv-vapic", "spinlocks": "hv-spinlocks", "vpindex": "hv-vpindex",
    "runtime": "hv-runtime", "synic": "hv-synic", "stimer": "hv-stimer", "reset": "hv-reset",
    "vendor_id": "hv-vendor-id", "frequencies": "hv-frequencies", "reenlightenment": "hv-reenlightenment",
    "tlbflush": "hv-tlbflush", "ipi": "hv-ipi", "evmcs": "hv-evmcs", "avic": "hv-avic",
    "emsr_bitmap": "hv-emsr-bitmap", "xmm_input": "hv-xmm-input",
}
KVM_PROPS = {"hidden": "kvm", "hint-dedicated": "kvm-hint-dedicated", "poll-control": "kvm-poll-control",
             "pv-ipi": "kvm-pv-ipi"}
DEFAULT_MODEL = "qemu64"  # QEMU's own default x86_64 CPU, named when only properties are added


def _on_off(value: bool) -> str:
    return "on" if value else "off"


def _hyperv_props(hv: HyperV) -> list[str]:
    if hv.mode == "passthrough":
        return ["hv-passthrough=on"]
    out = []
    for x in hv.features:
        prop = HV_PROPS[x.name]
        if x.name == "spinlocks" and x.state:
            out.append(f"{prop}={hex(x.retries if x.retries is not None else 0x1FFF)}")
        elif x.name == "vendor_id":
            if x.state:
                out.append(f"{prop}={x.value}")
        else:
            out.append(f"{prop}={_on_off(x.state)}")
        if x.name == "stimer" and x.direct is not None:
            out.append(f"hv-stimer-direct={_on_off(x.direct)}")
    return out


def accel_props(b: Build) -> list[str]:
    """The CPU properties of <hyperv>, the hypervclock/kvmclock timers, <kvm> and <pmu>/<pvspinlock>: on KVM
    all of them; under TCG those only KVM implements are left off, each group with a note."""
    d = b.domain
    f = d.features
    kvm_only: list[str] = []
    dropped: list[str] = []
    if f.hyperv is not None and (f.hyperv.features or f.hyperv.mode == "passthrough"):
        kvm_only += _hyperv_props(f.hyperv)
        names = ", ".join(x.name for x in f.hyperv.features if x.state) or f"mode {f.hyperv.mode}"
        dropped.append(f"Hyper-V enlightenments ({names})")
    timers = {t.name: t for t in (d.clock.timers if d.clock else ())}
    if (hv := timers.get("hypervclock")) is not None and hv.present is not None:
        kvm_only.append(f"hv-time={_on_off(hv.present)}")
        dropped.append("the Hyper-V clock (<timer name='hypervclock'>)")
    if (kc := timers.get("kvmclock")) is not None and kc.present is not None:
        kvm_only.append(f"kvmclock={_on_off(kc.present)}")
        dropped.append("the kvmclock timer setting")
    for name, state in f.kvm:
        kvm_only.append(f"{KVM_PROPS[name]}={_on_off(not state if name == 'hidden' else state)}")
    if f.kvm:
        dropped.append("the <kvm> settings (" + ", ".join(name for name, _ in f.kvm) + ")")
    if f.pvspinlock is not None:
        kvm_only.append(f"kvm-pv-unhalt={_on_off(f.pvspinlock)}")
        dropped.append("<pvspinlock>")
    if any(p.model == "hyperv" for p in d.devices.panics):  # the guest reports crashes through Hyper-V MSRs
        kvm_only.append("hv-crash=on")
        dropped.append("the Hyper-V crash MSRs (<panic model='hyperv'>)")
    common = [f"pmu={_on_off(f.pmu)}"] if f.pmu is not None else []
    if b.ctx.accel == "kvm":
        return kvm_only + common
    if dropped:
        b.note("under TCG emulation " + "; ".join(dropped) + " are not given to the guest: only KVM provides "
               "them (they apply when the domain runs on a host with KVM)")
    return common


def cpu_options(b: Build) -> list[Option]:
    cpu = b.domain.cpu
    extra = accel_props(b)
    if cpu is None:
        return [Option("-cpu", ",".join([DEFAULT_MODEL, *extra]))] if extra else []
    kvm = b.ctx.accel == "kvm"
    mode = cpu.mode or ("custom" if cpu.model else None)
    if mode in ("host-passthrough", "host-model"):
        model = "host" if kvm else "max"
        if not kvm:
            b.note(f"CPU mode {mode} under TCG runs as '-cpu max' (all features TCG emulates, not the host's CPU)")
        elif mode == "host-model":
            b.note("CPU mode host-model runs as host-passthrough ('-cpu host'): no model expansion yet")
    elif mode == "maximum":
        model = "max"
    elif mode == "custom":
        if not cpu.model:
            raise InvalidArgument("<cpu mode='custom'> needs a <model>, e.g. <model>Skylake-Client</model>")
        model = cpu.model
    elif mode is None:
        if cpu.features:
            raise InvalidArgument("CPU features need a CPU model or mode; add <model> or mode='host-passthrough'")
        # only topology: QEMU's default model
        return [Option("-cpu", ",".join([DEFAULT_MODEL, *extra]))] if extra else []
    else:
        raise UnsupportedConfig(
            f"CPU mode '{mode}' is not supported; use host-passthrough, host-model, maximum or custom")
    flags = []
    if cpu.cache_mode == "passthrough":
        if kvm:
            flags.append("host-cache-info=on")
        else:
            b.note("<cpu><cache mode='passthrough'/> under TCG is not applied: the guest sees TCG's cache, not the "
                   "host's")
    elif cpu.cache_mode in ("emulate", "disable"):
        flags.append(f"l3-cache={'on' if cpu.cache_mode == 'emulate' else 'off'}")
    for feat in cpu.features:
        if feat.policy in ("require", "force", "optional"):
            flags.append(f"+{feat.name}")
        elif feat.policy in ("disable", "forbid"):
            flags.append(f"-{feat.name}")
        else:
            raise InvalidArgument(f"CPU feature {feat.name}: policy '{feat.policy}' is unknown")
    return [Option("-cpu", ",".join([model] + flags + extra))]

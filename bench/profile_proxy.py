"""Where Seamline's CPU goes under load: py-spy on the proxy, perf on the engine process, top frames by self time.

    PYTHONPATH=src .venv/bin/python bench/profile_proxy.py [--target seamline] [--method POST] [--seconds 20] [--conns 16]

Starts the upstream (nginx, CPU 0) and one Seamline target of bench/compare.py (CPU 1, its engine process too),
loads it with the same wrk workload, and while it runs samples the proxy with `py-spy record --gil --format raw`
(collapsed stacks of the thread holding the GIL: what the one core runs in Python; py-spy itself on CPU 0) and,
when `perf` exists, the engine process's native stacks. Prints the top functions by self time (on top of the stack
when sampled; C code counts for the Python function that called it) and by total time, and writes the collapsed
stacks under bench/results/ (feed them to flamegraph.pl or speedscope for the picture).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from compare import HERE, LOAD_CPU, ensure_apt, lua_script, nginx_conf, start_target, upstream_server
from proxy import free_port, pinned, stop_all, wait_port

LINE = re.compile(r":\d+\)$")


def top_frames(collapsed: Path, n: int = 10) -> tuple[list[tuple[str, float]], list[tuple[str, float]], int]:
    """(top by self share, top by total share, samples) from `frame;frame;… count` lines."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        k = int(count)
        frames = [LINE.sub(")", f) for f in stack.split(";")]  # by function, not by line
        samples += k
        own[frames[-1]] += k
        for f in set(frames):
            total[f] += k
    if not samples:
        return [], [], 0
    return (
        [(f, c / samples) for f, c in own.most_common(n)],
        [(f, c / samples) for f, c in total.most_common(n)],
        samples,
    )


def engine_pid(proxy_pid: int) -> int | None:
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if ppid == proxy_pid and b"seamline.record.engine" in (d / "cmdline").read_bytes():
                    return int(d.name)
            except OSError:
                continue
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--target", default="seamline")
    ap.add_argument("--method", default="POST")
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        sys.exit("needs py-spy: pip install py-spy")
    nginx = ensure_apt("nginx", "nginx")
    ensure_apt("wrk", "wrk")
    tmp = Path(tempfile.mkdtemp(prefix="seamline-profile-"))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        up = free_port()
        procs.append(subprocess.Popen(pinned([nginx, "-c", str(nginx_conf(tmp, "upstream", upstream_server(up)))], LOAD_CPU)))
        wait_port(up)
        target = start_target(args.target, up, tmp, {"nginx": nginx})
        assert target.proc is not None
        procs.append(target.proc)
        script = lua_script(tmp, args.method)
        warm = ["wrk", "-t1", f"-c{args.conns}", "-d3s", "-s", str(script), target.url]
        subprocess.run(pinned(warm, LOAD_CPU), capture_output=True, check=True)
        load = subprocess.Popen(
            pinned(["wrk", "-t1", f"-c{args.conns}", f"-d{args.seconds + 4}s", "-s", str(script), target.url], LOAD_CPU),
            stdout=subprocess.PIPE,
        )
        time.sleep(1)  # let the load settle before sampling
        py_out = args.out / f"profile-{args.target}-{args.method}-{stamp}.collapsed"
        spy = [pyspy, "record", "--gil", "--format", "raw", "-r", "200", "-d", str(args.seconds), "-o", str(py_out)]
        spy_proc = subprocess.Popen(pinned([*spy, "-p", str(target.proc.pid)], LOAD_CPU), stdout=subprocess.DEVNULL)
        perf_out = None
        eng = engine_pid(target.proc.pid)
        if eng and shutil.which("perf"):
            perf_out = tmp / "perf.data"
            perf = ["perf", "record", "-F", "199", "-g", "-p", str(eng), "-o", str(perf_out), "--", "sleep", str(args.seconds)]
            subprocess.run(pinned(perf, LOAD_CPU), capture_output=True)
        spy_proc.wait()
        rps = load.communicate()[0].decode()
        print(next((ln for ln in rps.splitlines() if "Requests/sec" in ln), "?"))
        own, total, samples = top_frames(py_out)
        print(f"\npy-spy, proxy process ({samples} samples, idle excluded) — top frames by self time:")
        for f, share in own:
            print(f"  {share:6.1%}  {f}")
        print("\ntop frames by total time (inclusive):")
        for f, share in total:
            print(f"  {share:6.1%}  {f}")
        if perf_out is not None and perf_out.exists():
            rep = subprocess.run(
                ["perf", "report", "-i", str(perf_out), "--no-children", "--sort", "dso,symbol", "--stdio", "-g", "none"],
                capture_output=True,
                text=True,
            ).stdout
            rows = [ln for ln in rep.splitlines() if ln.strip() and not ln.startswith("#")][:12]
            print(f"\nperf, engine process {eng} — top symbols by self time:")
            print("\n".join(rows))
            (args.out / f"profile-engine-{stamp}.txt").write_text(rep)
        print(f"\ncollapsed stacks: {py_out}")
    finally:
        stop_all(procs, 20)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

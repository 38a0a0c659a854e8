"""The instruction set a benchmark runs at, for every library in the process.

Environment knobs cap fastnet's engines and most peers (see ``report.ISAS``), but
some libraries dispatch on CPUID at run time and have no knob: JAX's dot kernels
run AVX-512 code under ``--xla_cpu_max_isa=AVX2``.  ``reexec_capped`` restarts the
process with ``bench/cpuid_cap.c`` preloaded, which answers CPUID as a CPU without
AVX-512 (or without AVX) would, using the kernel's CPUID faulting.  The same
library measures the FMA throughput limit (``fma_peak``), the ceiling every GEMM
rate in the reports sits under.
"""
import ctypes
import hashlib
import os
import subprocess
import sys
import sysconfig
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "cpuid_cap.c")
ENV_CAP = "FASTNET_CPUID_CAP"
ENV_WHY = "FASTNET_CPUID_CAP_UNAVAILABLE"
#: vector width (bits) of the widest FMA each --isa allows
WIDTH = {"avx2": 256, "baseline": 128}


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def helper_library():
    """Path of the compiled helper (built once per source version), or (None, why)."""
    with open(SOURCE, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    out_dir = os.path.join(HERE, "build")
    path = os.path.join(out_dir, "cpuid_cap-%s.so" % digest)
    if os.path.exists(path):
        return path, None
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    os.makedirs(out_dir, exist_ok=True)
    tmp = "%s.%d.tmp" % (path, os.getpid())
    try:
        r = subprocess.run([cc, "-O2", "-shared", "-fPIC", SOURCE, "-o", tmp],
                           capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, "no C compiler (%s)" % exc
    if r.returncode != 0:
        return None, "compiling %s failed: %s" % (os.path.basename(SOURCE), r.stderr.strip()[-300:])
    os.replace(tmp, path)
    for old in os.listdir(out_dir):  # builds of earlier versions of the source
        if old.startswith("cpuid_cap-") and old.endswith(".so") and old != os.path.basename(path):
            try:
                os.remove(os.path.join(out_dir, old))
            except OSError:
                pass
    return path, None


def reexec_capped(isa, argv):
    """Restart this script with CPUID capped at `isa` (avx2 / baseline); returns only
    when already capped, for native, or when capping is impossible (the reason is
    then in the environment, for the report)."""
    if isa not in WIDTH or os.environ.get(ENV_CAP) == isa or os.environ.get(ENV_WHY):
        return
    if sys.platform != "linux" or "cpuid_fault" not in cpu_flags():
        os.environ[ENV_WHY] = "the kernel offers no CPUID faulting (no cpuid_fault flag)"
        return
    path, why = helper_library()
    if path is None:
        os.environ[ENV_WHY] = why
        return
    os.environ[ENV_CAP] = isa
    # faulthandler would take SIGSEGV over from the preloaded handler and turn the
    # first trapped CPUID into a crash report
    os.environ.pop("PYTHONFAULTHANDLER", None)
    os.environ["LD_PRELOAD"] = " ".join(p for p in (path, os.environ.get("LD_PRELOAD", "")) if p)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable] + [os.path.abspath(sys.argv[0])] + list(argv))


def cap_status(isa):
    """One line for the report: is CPUID capped in this process, and what numpy sees."""
    if isa not in WIDTH:
        return "not capped (native)"
    why = os.environ.get(ENV_WHY)
    try:
        lib = ctypes.CDLL(None)
        active, answered = lib.cpuid_cap_active(), lib.cpuid_cap_answered()
    except AttributeError:
        return "**not capped** (%s): libraries that dispatch on CPUID at run time (JAX's dot kernels) " \
               "may use wider vectors than --isa %s" % (why or "run report.py as a script to cap it", isa)
    try:
        import numpy as np
        feats = np._core._multiarray_umath.__cpu_features__
        seen = "numpy sees AVX512F %s, AVX2 %s" % (feats.get("AVX512F"), feats.get("AVX2"))
    except (ImportError, AttributeError):
        seen = "numpy's view unknown"
    return "%s by bench/cpuid_cap.c (CPUID faulting; %d CPUID queries answered so far; %s)" % (
        "capped at %s" % isa if active else "**capping failed**", answered, seen)


def native_width():
    flags = cpu_flags()
    return 512 if "avx512f" in flags else 256 if {"avx2", "fma"} <= flags else 128


def fma_peak(isa, threads, rounds=3, iters=60_000_000):
    """(GFLOP/s of `threads` threads running FMA chains side by side, vector width),
    the median of `rounds`; (None, why) without the helper."""
    width = WIDTH.get(isa) or native_width()
    path, why = helper_library()
    if path is None:
        return None, why
    fn = ctypes.CDLL(path).fma_peak_gflops
    fn.restype, fn.argtypes = ctypes.c_double, [ctypes.c_int, ctypes.c_long]
    totals = []
    for _ in range(rounds):
        rates = [0.0] * threads

        def run(i):
            rates[i] = fn(width, iters)

        ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        totals.append(sum(rates))
        time.sleep(0.05)
    totals.sort()
    return totals[len(totals) // 2], width

#!/usr/bin/env python3
"""mmfm's two commands. Each creates the virtual environment and installs what it needs first.

    python dev.py course [--serve]   run every notebook and render the documentation site (_site/)
    python dev.py test               check notebooks/library sync and cleanliness, run notebook tests,
                                     render the docs, then the pytest suite (its summary is printed last)
    python dev.py setup              only create/update the environment

Environment variables:
    MMFM_VENV    where the virtual environment lives (default: .venv in the repository)
    MMFM_TORCH   the pip requirement for PyTorch (default: the normal `torch` build when an NVIDIA GPU is
                 visible, else `torch==2.13.0`, whose CPU wheel CI machines keep on disk)
"""
import hashlib, os, shutil, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("MMFM_VENV", ROOT / ".venv"))
PY = VENV / "bin" / "python"
# openai-whisper is our reference implementation. Its wheel requires triton (~1 GB, GPU only), which no CPU
# path uses, so it is installed without dependencies; its other dependencies are in settings.ini's dev extra.
WHISPER_REF = "openai-whisper==20250625"
CPU_TORCH = "torch==2.13.0"


def say(msg): print(f"\n== {msg}", flush=True)


def sh(*cmd, check=True, **kw):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, check=check, **kw)


def torch_spec():
    if os.environ.get("MMFM_TORCH"): return os.environ["MMFM_TORCH"]
    return "torch" if shutil.which("nvidia-smi") else CPU_TORCH


def setup():
    "Create the venv and install mmfm with its dev extra; skipped when nothing changed since the last install."
    if not PY.exists():
        say(f"creating virtual environment {VENV}")
        sh(sys.executable, "-m", "venv", VENV)
    stamp = VENV / ".mmfm-install"
    key = hashlib.sha256((ROOT / "settings.ini").read_bytes() + (ROOT / "setup.py").read_bytes() +
                         Path(__file__).read_bytes() + torch_spec().encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == key: return
    say("installing dependencies")
    pip = [PY, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    sh(*pip, "--upgrade", "pip")
    sh(*pip, *torch_spec().split())
    sh(*pip, "-e", ".[dev]")
    sh(*pip, "--no-deps", WHISPER_REF)
    sh(PY, "-m", "pip", "check", check=False)  # reports openai-whisper's missing triton, which is expected
    stamp.write_text(key)


def browser_ready() -> bool:
    "Make sure Debian's chromium is present for the docs browser test (installed with apt-get when root)."
    if shutil.which("chromium"): return True
    if os.geteuid() == 0 and shutil.which("apt-get"):
        say("installing chromium (Debian) for the docs browser test")
        sh("apt-get", "update", "-q", check=False, stdout=subprocess.DEVNULL)
        sh("apt-get", "install", "-y", "-q", "chromium", check=False, stdout=subprocess.DEVNULL)
    return bool(shutil.which("chromium"))


def venv_bin(name): return VENV / "bin" / name


def git_clean(paths, what, fix):
    "Fail when `paths` differ from the committed tree (after a regenerating step)."
    if not (ROOT / ".git").exists(): return print(f"(not a git checkout: skipping the {what} check)")
    out = subprocess.run(["git", "status", "--porcelain", "--", *paths], cwd=ROOT, capture_output=True, text=True).stdout
    if out.strip():
        subprocess.run(["git", "--no-pager", "diff", "--stat", "--", *paths], cwd=ROOT)
        sys.exit(f"FAILED: {what}:\n{out}\nFix: {fix}")


def test():
    setup()
    t0 = time.time()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONHASHSEED": "0"}
    say("notebooks and library in sync (nbdev_export)")
    sh(venv_bin("nbdev_export"), env=env)
    git_clean(["mmfm"], "the library differs from what the notebooks export", "run nbdev_export and commit mmfm/")
    say("notebooks clean (nbdev_clean)")
    sh(venv_bin("nbdev_clean"), env=env)
    git_clean(["nbs"], "notebooks are not clean", "run nbdev_clean and commit nbs/")
    say("notebook tests (nbdev_test)")
    # two notebooks at a time, one thread each: two multi-threaded PyTorch processes on two cores slow each other
    # down several-fold (OpenMP threads spin while they wait)
    sh(venv_bin("nbdev_test"), "--n_workers", "2", "--timing", env={**env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    say("documentation site (offline render) and README")
    sh(PY, ROOT / "tools/build_docs.py", "--readme", env=env)
    git_clean(["README.md"], "README.md is stale", "run `python tools/build_docs.py --readme` and commit README.md")
    if not browser_ready():
        if os.environ.get("CI"): sys.exit("FAILED: chromium is required for the docs browser test in CI")
        print("chromium not found: the browser test will be skipped")
    print(f"(checks before pytest took {time.time() - t0:.0f} s)")
    say("pytest")
    r = subprocess.run([str(PY), "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider", "--durations=8"],
                       cwd=ROOT, env=env)
    sys.exit(r.returncode)


def course(serve=False):
    setup()
    t0 = time.time()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"} if not os.environ.get("MMFM_ONLINE") else dict(os.environ)
    say("executing the notebooks and rendering the site")
    sh(PY, ROOT / "tools/build_docs.py", "--execute", *(["--serve"] if serve else []), env=env)
    print(f"(took {time.time() - t0:.0f} s)")


def main():
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"): return print(__doc__)
    cmd = args[0]
    if cmd == "setup": setup()
    elif cmd == "test": test()
    elif cmd == "course": course(serve="--serve" in args)
    else: sys.exit(f"unknown command {cmd!r}\n{__doc__}")


if __name__ == "__main__":
    main()

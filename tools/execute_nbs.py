"""Execute notebooks and save their outputs, skipping test-flagged cells, as `nbdev_test` does.

    python tools/execute_nbs.py [NOTEBOOK ...] [--flags slow gpu] [--out DIR]

With no notebook names, runs every notebook in `nbs/`. Cells whose directives include a flag listed in
settings.ini's `tst_flags` (e.g. `#| slow`, `#| gpu`, `#| online`) are skipped unless that flag is passed with
`--flags`; their outputs are left as they were. Outputs are written back into the notebooks (use
`nbdev_clean` afterwards), or into copies under `--out`. Exits non-zero if any notebook raises.
"""
import argparse, configparser, os, re, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tst_flags():
    cfg = configparser.ConfigParser(delimiters=["="])
    cfg.read(ROOT / "settings.ini")
    return set(cfg["DEFAULT"].get("tst_flags", "").split())


def directives(source):
    "The `#| name` directives at the top of a cell."
    names = set()
    for line in source.splitlines():
        m = re.match(r"\s*#\s*\|\s*([\w-]+)", line)
        if m: names.add(m.group(1))
        elif line.strip(): break
    return names


def execute(path: Path, skip: set, out: Path | None) -> tuple[bool, float]:
    from execnb.nbio import read_nb, write_nb
    from execnb.shell import CaptureShell
    nb = read_nb(path)

    def _no_eval(cell):
        return cell.cell_type != "code" or bool(directives(cell.source) & skip)

    start, shell, ok = time.time(), CaptureShell(path, mpl_format="png"), True
    cwd = os.getcwd()
    os.chdir(path.parent)
    os.environ["IN_TEST"] = "1"
    try: shell.run_all(nb, exc_stop=True, preproc=_no_eval)
    except Exception:
        sys.stderr.write(shell.prettytb(fname=path) + "\n")
        ok = False
    finally: os.chdir(cwd)
    if ok: write_nb(nb, (out / path.name) if out else path)
    return ok, time.time() - start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("notebooks", nargs="*", type=Path)
    p.add_argument("--flags", nargs="*", default=[], help="test flags to run (default: skip all of tst_flags)")
    p.add_argument("--out", type=Path, help="write executed copies here instead of in place")
    a = p.parse_args(argv)
    nbs = a.notebooks or sorted((ROOT / "nbs").glob("*.ipynb"))
    if a.out: a.out.mkdir(parents=True, exist_ok=True)
    skip, failed = tst_flags() - set(a.flags), []
    for nb in nbs:
        ok, secs = execute(nb.resolve(), skip, a.out)
        print(f"{'ok  ' if ok else 'FAIL'} {secs:6.1f}s  {nb.name}", flush=True)
        if not ok: failed.append(nb.name)
    if failed: sys.exit(f"{len(failed)} notebook(s) failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()

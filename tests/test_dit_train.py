"mmfm.diffusion.train under accelerate: 2 CPU processes compute the same update as 1 process on the combined batch."
import os, subprocess, sys, shutil
from pathlib import Path
import pytest, torch

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-6  # max abs parameter difference after one optimiser step
# Plain gradient descent: the update is linear in the (all-reduced) gradient. AdamW's first step, lr*g/(|g|+eps),
# would turn a rounding-level difference in a near-zero gradient into a full step of either sign.
ARGS = ["--objective", "flow", "--steps", "1", "--optimizer", "sgd", "--lr", "0.5"]

def test_two_processes_equal_one_process_on_combined_batch(tmp_path):
    exe = Path(sys.executable).with_name("accelerate")
    cmd = [str(exe) if exe.exists() else shutil.which("accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(29500 + os.getpid() % 1000),
           "-m", "mmfm.diffusion", *ARGS, "--batch_size", "4", "--out", str(tmp_path / "two.pt")]
    # --multi_gpu starts torch.distributed processes; ACCELERATE_USE_CPU makes each one a CPU process talking over gloo
    # (accelerate's --cpu flag alone would start a single process)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "ACCELERATE_USE_CPU": "true"}
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=150)
    assert r.returncode == 0, r.stderr[-3000:]
    two = torch.load(tmp_path / "two.pt", weights_only=True)

    from mmfm.diffusion import main, toy_setup
    main(objective="flow", steps=1, optimizer="sgd", lr=0.5, batch_size=8, out=str(tmp_path / "one.pt"))  # this process alone
    one = torch.load(tmp_path / "one.pt", weights_only=True)
    init = toy_setup(0)[-1].state_dict()
    moved = max((one["state_dict"][k] - init[k]).abs().max().item() for k in init)
    assert moved > 1e-3, moved                 # the step really changed the parameters ...
    diff = max((one["state_dict"][k] - two["state_dict"][k]).abs().max().item() for k in init)
    assert diff < TOL, diff                    # ... identically in both runs

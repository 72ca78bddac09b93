"""Prepare what tools/gpu_train.sh needs on a GPU machine without TensorFlow or network.

    python tools/gpu_prepare.py --photos /work/photos [--sizes 256,512] [--state DIR]

Writes the git-ignored folders that travel with the working tree (at most 64 MiB in all):
- ``.whl/``: the wheels of keras, optree and namex for CPython 3.12 on x86-64 (``pip download``;
  the machine has jax, numpy, h5py, ml-dtypes, rich, absl-py and packaging);
- ``.gpu/holes-S.npz``: the training holes for S x S views, pre-rendered by the TF
  ``MaskGenerator`` (``numpy_feed render-holes``);
- ``.gpu/photos/train``, ``.gpu/photos/val``: the photos re-encoded as JPEG (``--quality``), each
  scaled down (Lanczos) only as far as the photo budget needs: the largest photos first, to a
  common long side, until the folder fits ``--photo_mib``;
- ``.gpu/state``, ``.gpu/best.npz``, ``.gpu/validation-network.jsonl``,
  ``.gpu/jax-cache.tar``: the last run's files (``--state``: the folder a run's OUT came back
  to), so the next run resumes and starts with a warm compilation cache.
- ``.gpu/src``: the code of the commit HEAD (``git archive``; the bundled weights and ``.whl``
  as links), which ``.gpu/run.sh`` runs from, so that uncommitted work in the tree does not
  change what trains;
- ``.gpu/run.sh``: the two-stage command (reconstruction, then Algorithm 1, then the forward
  timings), a copy of ``training_runs/default/gen3/gpu-run1/run.sh``.
Prints the size of what will travel.
"""

import argparse
import os
import shutil
import subprocess
import sys

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPU = os.path.join(ROOT, ".gpu")
WHEELS = os.path.join(ROOT, ".whl")
# The GPU machine's Python; manylinux tags pip must match exactly (device README).
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64"]
PACKAGES = ["keras==3.15.1", "optree", "namex"]
STATE_FILES = ("generator.npz", "critic.npz", "g_optimizer.npz", "d_optimizer.npz")
RUN_FILES = ("best.npz", "validation-network.jsonl", "jax-cache.tar")
LIMIT_MIB = 64


def download_wheels():
    os.makedirs(WHEELS, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
               "--python-version", "3.12", "--implementation", "cp", "-d", WHEELS]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    subprocess.run(command + PACKAGES, check=True)


def render_holes(size, count):
    path = os.path.join(GPU, f"holes-{size}.npz")
    if not os.path.exists(path):
        subprocess.run([sys.executable, "-m", "hifill_tf.data.numpy_feed", "render-holes",
                        "--size", str(size), "--count", str(count), "--out", path],
                       check=True, cwd=ROOT)
    return path


def _photos(folder):
    from hifill_tf.io import find_images

    return find_images(folder)


def pack_photos(source, budget_mib, quality=90, max_side=None, val_side=1024):
    """Re-encode ``source``/{train,val} into .gpu/photos; cap the long side until it fits.

    Validation photos are capped at ``val_side``: the JAX trainer scores views of at most the
    network size (``NetworkValidator``), so more pixels would only take room from training.
    """
    paths = {split: _photos(os.path.join(source, split)) for split in ("train", "val")}
    cap = max_side or max(max(Image.open(p).size) for p in paths["train"])
    while True:
        target = os.path.join(GPU, "photos")
        shutil.rmtree(target, ignore_errors=True)
        total = 0
        for split, files in paths.items():
            os.makedirs(os.path.join(target, split))
            for path in files:
                with Image.open(path) as image:
                    image = image.convert("RGB")
                    scale = min(1.0, (cap if split == "train" else val_side) / max(image.size))
                    if scale < 1.0:
                        size = (round(image.width * scale), round(image.height * scale))
                        image = image.resize(size, Image.Resampling.LANCZOS)
                    name = os.path.splitext(os.path.basename(path))[0] + ".jpg"
                    out = os.path.join(target, split, name)
                    image.save(out, quality=quality)
                    total += os.path.getsize(out)
        print(f"photos with long side <= {cap}: {total / 2**20:.1f} MiB "
              f"({sum(map(len, paths.values()))} files)")
        if total <= budget_mib * 2**20:
            return cap, total
        cap = int(cap * 0.85)


def copy_state(source):
    """The state to resume from. A committed state holds no generator (its ``meta.json`` says
    which step the bundled weights are): ``generator.npz`` is written from the bundled weights,
    whose keys are the state's, so the repository keeps one copy of them."""
    import json

    import numpy as np

    state = os.path.join(GPU, "state")
    shutil.rmtree(state, ignore_errors=True)
    os.makedirs(state)
    for name in STATE_FILES:
        if os.path.exists(os.path.join(source, name)):
            shutil.copy(os.path.join(source, name), state)
    if not os.path.exists(os.path.join(state, "generator.npz")):
        with open(os.path.join(source, "meta.json")) as f:
            meta = json.load(f)
        weights = os.path.join(ROOT, "hifill_tf", "weights", "hifill_default.npz")
        with np.load(weights) as data:
            arrays = {k: data[k] for k in data.files if not k.startswith("__")}
        np.savez(os.path.join(state, "generator.npz"), __meta__=np.array(json.dumps(meta)),
                 **arrays)
    for name in RUN_FILES:
        if os.path.exists(os.path.join(source, name)):
            shutil.copy(os.path.join(source, name), GPU)


def snapshot():
    """The code of HEAD in .gpu/src, without the bundled weights (a link to the tree's)."""
    source = os.path.join(GPU, "src")
    shutil.rmtree(source, ignore_errors=True)
    os.makedirs(source)
    archive = subprocess.run(["git", "archive", "HEAD", "hifill_tf", "train.py", "tools", "bench"],
                             cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", source], input=archive, check=True)
    weights = os.path.join(source, "hifill_tf", "weights", "hifill_default.npz")
    os.remove(weights)
    os.symlink("../../../../hifill_tf/weights/hifill_default.npz", weights)
    os.symlink("../../.whl", os.path.join(source, ".whl"))
    shutil.copy(os.path.join(ROOT, "training_runs", "default", "gen3", "gpu-run1", "run.sh"),
                os.path.join(GPU, "run.sh"))


def folder_mib(folder):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(folder)
               for f in fs) / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", required=True, help="output_dir of hifill_tf.data.photos")
    parser.add_argument("--sizes", default="256", help="view sizes to render hole pools for")
    parser.add_argument("--holes", type=int, default=4000, help="holes per pool")
    parser.add_argument("--photo_mib", type=float, default=36.0, help="budget of the photos")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality of the photos")
    parser.add_argument("--max_side", type=int, default=None, help="start the cap here")
    parser.add_argument("--state", default=None, help="a run's OUT folder to resume from")
    arguments = parser.parse_args()
    os.makedirs(GPU, exist_ok=True)
    download_wheels()
    for size in arguments.sizes.split(","):
        print("holes:", render_holes(int(size), arguments.holes))
    pack_photos(arguments.photos, arguments.photo_mib, arguments.quality, arguments.max_side)
    if arguments.state:
        copy_state(arguments.state)
    snapshot()
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                             check=True).stdout.split(b"\0")
    tree = sum(os.path.getsize(os.path.join(ROOT, f.decode())) for f in tracked
               if f and os.path.exists(os.path.join(ROOT, f.decode()))) / 2**20
    total = tree + folder_mib(GPU) + folder_mib(WHEELS)
    print(f"travels: tree {tree:.1f} + .gpu {folder_mib(GPU):.1f} + .whl {folder_mib(WHEELS):.1f}"
          f" = {total:.1f} MiB (limit {LIMIT_MIB})")
    if total > LIMIT_MIB:
        sys.exit(f"gpu_prepare.py: {total:.1f} MiB is over the {LIMIT_MIB} MiB limit: lower "
                 "--photo_mib")


if __name__ == "__main__":
    main()

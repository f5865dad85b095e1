"""Regenerate the docs' images with the commands docs/guide/cli.md shows:

    python docs/make_images.py

docs/images/loss_curve.png   `fastmlp train iris_train.csv ... --plot` (scikit-learn's iris data)
docs/images/xor_boundary.png `python -m fastmlp xor --plot` (the seed's network)

Needs the plot and cli extras (matplotlib, pandas, scikit-learn).
"""

import contextlib
import os
import sys
import tempfile
from pathlib import Path

from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split

from fastmlp.__main__ import main

IMAGES = Path(__file__).resolve().parent / "images"


def write_iris(directory):
    """iris_train.csv and iris_test.csv in `directory`, as docs/guide/cli.md's Python block writes them."""
    iris = load_iris(as_frame=True)
    frame = iris.frame.rename(columns=lambda name: name.removesuffix(" (cm)").replace(" ", "_"))
    frame["species"] = iris.target_names[frame.pop("target")]
    train, test = train_test_split(frame, test_size=0.3, stratify=frame.species, random_state=0)
    train.to_csv(os.path.join(directory, "iris_train.csv"), index=False)
    test.to_csv(os.path.join(directory, "iris_test.csv"), index=False)


def run(*args):
    status = main([str(arg) for arg in args])
    if status:
        sys.exit(f"fastmlp {' '.join(map(str, args))} failed with status {status}")


def make_images():
    IMAGES.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as directory, contextlib.chdir(directory):
        write_iris(directory)
        run("train", "iris_train.csv", "--target", "species", "--output", "iris.npz", "--hidden", 16,
            "--epochs", 500, "--lr", 0.02, "--seed", 0, "--plot", IMAGES / "loss_curve.png")
        run("xor", "--plot", IMAGES / "xor_boundary.png")
    for image in sorted(IMAGES.glob("*.png")):
        print(f"{image.relative_to(IMAGES.parent.parent)}: {image.stat().st_size // 1024} KB")


if __name__ == "__main__":
    make_images()

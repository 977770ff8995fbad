#!/usr/bin/env python3
"""Writes a balanced list of 48 single-object eval prompts (caption<TAB>seed) to stdout, like
models/eval/prompts-single.txt: colour x shape cycled, the 8 directions 6 times each, speed
fast / slow / omitted 16 times each, 16 on a gray background, in an order shuffled by SEED.
Prompt seeds are BASE, BASE+1, ...: keep them >= 1e9, clear of tpdiff-train's seeds.
Standard library only.  usage: make-eval-prompts.py SEED BASE"""
import random
import sys

COLORS = ["red", "green", "blue", "yellow", "white", "magenta"]
SHAPES = ["circle", "square", "triangle"]
DIRECTIONS = ["left", "right", "up", "down", "up-left", "up-right", "down-left", "down-right"]
COUNT = 48


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    rng = random.Random(int(sys.argv[1]))
    base = int(sys.argv[2])
    pairs = [(c, s) for c in COLORS for s in SHAPES]
    rng.shuffle(pairs)
    pairs = (pairs * 3)[:COUNT]
    directions = DIRECTIONS * (COUNT // len(DIRECTIONS))
    rng.shuffle(directions)
    speeds = ["fast "] * (COUNT // 3) + ["slow "] * (COUNT // 3) + [""] * (COUNT // 3)
    rng.shuffle(speeds)
    backgrounds = [" on a gray background"] * (COUNT // 3) + [""] * (COUNT - COUNT // 3)
    rng.shuffle(backgrounds)
    for i in range(COUNT):
        color, shape = pairs[i]
        print(f"a {speeds[i]}{color} {shape} moving {directions[i]}{backgrounds[i]}\t{base + i}")


if __name__ == "__main__":
    main()

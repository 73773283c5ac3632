"""Command line: `python -m fbn_keras.synthetic --contact-sheet PNG` and `--benchmark N`."""

from __future__ import annotations

import sys
import time
from typing import Optional

from fbn_keras import cli
from fbn_keras.synthetic.databases import generate
from fbn_keras.synthetic.sheet import contact_sheet


def images_per_second(n: int = 1000, database: str = "synth-affectnet") -> float:
    """Rendering throughput of `generate` on this process (one core)."""
    start = time.perf_counter()
    count = sum(1 for _ in generate(database, "train", n=n))
    return count / (time.perf_counter() - start)


@cli.entry_point("fbn_keras.synthetic")
def main(argv: Optional[list[str]] = None) -> int:
    parser = cli.ArgumentParser(prog=cli.prog("fbn_keras.synthetic"),
                                description="Synthetic faces: contact sheet and renderer speed")
    parser.add_argument("--contact-sheet", metavar="PNG", help="write the contact sheet here")
    parser.add_argument("--benchmark", type=cli.positive_int, metavar="N", help="render N images and print images/s")
    args = parser.parse_args(argv)
    if not (args.contact_sheet or args.benchmark):
        parser.error("nothing to do: give --contact-sheet PNG and/or --benchmark N")
    if args.contact_sheet:
        contact_sheet(args.contact_sheet)
        print(f"wrote {args.contact_sheet}")
    if args.benchmark:
        print(f"{images_per_second(args.benchmark):.0f} images/s on one core")
    return 0


if __name__ == "__main__":
    sys.exit(main())

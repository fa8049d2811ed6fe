#!/usr/bin/env python
"""Run the benchmark suite: ``python run_all.py --methods dcec,idec --datasets usps --seeds 5``.

See ``python run_all.py --help`` and ``--list``.
"""

from dcbench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

"""``python benchmarks/compare.py ...`` is ``sb3-dspg compare ...`` (see ``sb3_dspg/compare.py``)."""

from sb3_dspg.compare import main

if __name__ == "__main__":
    main()

"""The lab, apart from the library: what measures DSPG rather than what a user trains with.

- :mod:`sb3_dspg.experiments.compare`: ``sb3-dspg compare``, DSPG against SB3 / sb3-contrib peers over
  worlds and seeds, with rliable statistics and plots;
- :mod:`sb3_dspg.experiments.one_step`: one-step worlds with an analytic ``∇_a E[R]``, on which the shipped
  DSPG step (:func:`sb3_dspg.estimator.estimate_action_gradient`) is checked by the tests and
  ``benchmarks/gradient_quality.py``.

Needs the ``bench`` extra (``pip install "sb3-dspg[bench]"``: rl-zoo3, rliable, pandas, matplotlib).
"""

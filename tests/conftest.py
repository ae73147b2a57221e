"""One torch thread per test process: faster for these small networks, and the same on every machine."""

import torch as th

th.set_num_threads(1)

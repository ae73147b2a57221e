"""Does ``torch.compile`` of DSPG's MLPs (denoiser, gradient head, twin Q) speed up an update? Interleaved timing.

python benchmarks/compile_check.py
"""

import statistics
import time

import torch as th
from throughput import fill_buffer, make_model


def main() -> None:
    th.set_num_threads(1)
    plain = make_model("dspg", "HalfCheetah-v5", [256, 256], "cpu")
    compiled = make_model("dspg", "HalfCheetah-v5", [256, 256], "cpu")
    for model in (plain, compiled):
        fill_buffer(model, 3000)
    policy = compiled.policy
    policy.denoiser.eps_net = th.compile(policy.denoiser.eps_net, dynamic=False)
    policy.grad_head.grad_net = th.compile(policy.grad_head.grad_net, dynamic=False)
    policy.critic.qf0, policy.critic.qf1 = th.compile(policy.critic.qf0), th.compile(policy.critic.qf1)
    policy.critic.q_networks = [policy.critic.qf0, policy.critic.qf1]
    start = time.perf_counter()
    compiled.train(gradient_steps=20, batch_size=256)
    print(f"compile + 20 steps: {time.perf_counter() - start:.1f} s")
    plain.train(gradient_steps=20, batch_size=256)
    times: dict[str, list[float]] = {"plain": [], "compiled": []}
    for _ in range(5):
        for name, model in (("plain", plain), ("compiled", compiled)):
            start = time.perf_counter()
            model.train(gradient_steps=50, batch_size=256)
            times[name].append((time.perf_counter() - start) / 50)
    for name, values in times.items():
        print(f"{name}: {1000 * statistics.median(values):.2f} ms / gradient step")


if __name__ == "__main__":
    main()

"""dexloop's DDPM / DDIM schedulers against diffusers 0.39's, as LeRobot 0.6.1 configures them.

The reference (tests/data/policies/diffusion/schedulers.safetensors, written by
tools/lerobot_reference/make_diffusion_reference.py with diffusers) holds the cumulative alphas,
the timesteps of ``set_timesteps``, ``add_noise`` and a whole denoising loop with fixed model outputs
after ``torch.manual_seed(7)``, plus the generator's next draw after the loop: equal next draws
mean dexloop made the same number of random draws of the same sizes as diffusers.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusion_reference_cases import SCHEDULER_CASES, SCHEDULER_COMMON, SCHEDULER_SHAPE, vector
from safetensors.torch import load_file

from dexloop.errors import PolicyConfigError
from dexloop.policies.diffusion.schedulers import DDIMScheduler, DDPMScheduler, make_noise_scheduler

DATA = Path(__file__).resolve().parents[1] / "data" / "policies" / "diffusion"
# float32 arithmetic done the same way; the only differences are the ulp-level ones of two torch builds
# on two CPUs (their vectorised kernels round differently), which 100 DDPM steps accumulate to ~1e-6.
ATOL = 5e-6


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    return load_file(str(DATA / "schedulers.safetensors"))


@pytest.mark.parametrize("name", sorted(SCHEDULER_CASES))
def test_scheduler_matches_diffusers(name: str, expected: dict[str, torch.Tensor]) -> None:
    spec = SCHEDULER_CASES[name]
    sched = make_noise_scheduler(spec["type"], **SCHEDULER_COMMON, **spec["kwargs"])
    assert isinstance(sched, DDPMScheduler if spec["type"] == "DDPM" else DDIMScheduler)
    torch.testing.assert_close(sched.alphas_cumprod, expected[f"{name}.alphas_cumprod"], rtol=0, atol=1e-7)

    x0 = torch.from_numpy(vector(f"{name}.x0", SCHEDULER_SHAPE))
    noise = torch.from_numpy(vector(f"{name}.noise", SCHEDULER_SHAPE, -2.0, 2.0))
    noisy = sched.add_noise(x0, noise, torch.tensor([3, 97], dtype=torch.long))
    torch.testing.assert_close(noisy, expected[f"{name}.add_noise"], rtol=0, atol=ATOL)

    sched.set_timesteps(spec["steps"])
    assert sched.timesteps.tolist() == expected[f"{name}.timesteps"].tolist()

    torch.manual_seed(7)
    sample = torch.randn(SCHEDULER_SHAPE)
    for i, t in enumerate(sched.timesteps):
        model_output = torch.from_numpy(vector(f"{name}.model_output.{i}", SCHEDULER_SHAPE, -1.5, 1.5))
        result = sched.step(model_output, t, sample)
        sample = result.prev_sample
        torch.testing.assert_close(
            result.pred_original_sample, expected[f"{name}.step{i}.pred_original_sample"], rtol=0, atol=ATOL
        )
        torch.testing.assert_close(sample, expected[f"{name}.step{i}.prev_sample"], rtol=0, atol=ATOL)
    # Same number and sizes of draws as diffusers: the generator is at the same place.
    assert torch.equal(torch.randn(1), expected[f"{name}.next_draw"])


def test_ddpm_draws_noise_at_every_step_but_the_last() -> None:
    sched = DDPMScheduler(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2")
    sched.set_timesteps(5)
    assert sched.timesteps.tolist() == [80, 60, 40, 20, 0]
    sample = torch.zeros(1, 4, 2)
    out = torch.zeros(1, 4, 2)
    gen = torch.Generator().manual_seed(3)
    ref = torch.Generator().manual_seed(3)
    for t in sched.timesteps:
        sched.step(out, t, sample, generator=gen)
    for _ in range(4):
        torch.randn((1, 4, 2), generator=ref)
    assert torch.equal(torch.randn(3, generator=gen), torch.randn(3, generator=ref))


def test_ddim_with_eta_zero_is_deterministic() -> None:
    sched = DDIMScheduler(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2")
    sched.set_timesteps(10)
    sample = torch.randn(2, 8, 3)
    out = torch.randn(2, 8, 3)
    state = torch.random.get_rng_state()
    a = sched.step(out, sched.timesteps[0], sample).prev_sample
    assert torch.equal(torch.random.get_rng_state(), state)
    b = sched.step(out, sched.timesteps[0], sample).prev_sample
    assert torch.equal(a, b)


def test_bad_scheduler_settings_raise() -> None:
    with pytest.raises(PolicyConfigError, match="noise_scheduler_type"):
        make_noise_scheduler("PNDM", num_train_timesteps=100)
    with pytest.raises(PolicyConfigError, match="beta_schedule"):
        DDPMScheduler(beta_schedule="exotic")
    with pytest.raises(PolicyConfigError, match="prediction_type"):
        DDIMScheduler(prediction_type="noise")
    with pytest.raises(PolicyConfigError, match="variance_type"):
        DDPMScheduler(variance_type="learned")
    sched = DDPMScheduler(num_train_timesteps=100)
    with pytest.raises(PolicyConfigError, match="cannot be larger"):
        sched.set_timesteps(101)
    with pytest.raises(PolicyConfigError, match="set_timesteps"):
        DDIMScheduler(num_train_timesteps=100).step(torch.zeros(1), 5, torch.zeros(1))

"""Ray actors and the device they answer on, on a local Ray that advertises one GPU this machine lacks.

Ray schedules by declared resources, so an actor reserving that GPU starts, gets its id from Ray and
then finds no CUDA device in torch: the run must stop with one line naming the cause, not answer on CPUs.
"""

from __future__ import annotations

import functools
import re

import pytest

ray = pytest.importorskip("ray", reason="the Ray engine needs the ray extra: pip install 'hguard[ray]'")
torch = pytest.importorskip("torch")

from hguard.calibrate.ray_engine import RayOptions, collect_ray  # noqa: E402
from hguard.errors import DataError  # noqa: E402
from hguard.generation import Generator  # noqa: E402
from hguard.testing import tiny_examples, tiny_model  # noqa: E402


@pytest.fixture(scope="module")
def gpu_cluster():
    ray.init(address="local", num_cpus=1, num_gpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where torch sees no GPU")
def test_an_actor_given_a_gpu_that_torch_cannot_see_stops_the_run_with_one_line(gpu_cluster, tmp_path):
    lm = tiny_model("llama", seed=3)
    exs = tiny_examples(lm)[:4]
    gen = Generator(lm, system_prompt="answer", max_new_tokens=4)
    opts = RayOptions(actors=1, num_gpus=1, model_factory=functools.partial(tiny_model, "llama", 3))
    with pytest.raises(DataError) as err:
        collect_ray(gen, exs, tmp_path, options=opts, progress=False, batch_size=4)
    msg = str(err.value)
    assert "\n" not in msg
    assert "--gpus-per-actor 1 but torch sees no CUDA GPU on" in msg and re.search(r"Ray GPU ids \[.?0.?\]", msg)
    assert not list((tmp_path / "shards").glob("shard-*.safetensors"))  # nothing answered on the CPU

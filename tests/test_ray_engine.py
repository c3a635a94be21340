"""The Ray engine against the local one on a tiny random model: same answers, features and probes;
a killed actor's shard retried; a resumed run answers only the missing shards; a bad address refused.

Starts its own Ray on this machine (two CPUs, no dashboard) and stops it at the end.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the Ray engine needs the ray extra: pip install 'hguard[ray]'")

from hguard.calibrate.collect import collect, load_collected  # noqa: E402
from hguard.calibrate.data import write_examples  # noqa: E402
from hguard.calibrate.pipeline import calibrate  # noqa: E402
from hguard.calibrate.ray_engine import RayOptions, collect_ray  # noqa: E402
from hguard.errors import DataError, InputError  # noqa: E402
from hguard.generation import Generator  # noqa: E402
from hguard.testing import tiny_examples, tiny_model, tiny_model_dying_once  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*the probe does not beat chance", "ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def cluster():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def lm():
    return tiny_model("llama", seed=3)


@pytest.fixture(scope="module")
def data(lm, tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    exs = tiny_examples(lm)
    write_examples(root / "data.jsonl", exs)
    return exs, root / "data.jsonl"


def _model_section(path):
    return json.loads(path.read_text())["model"]


def test_ray_and_local_engines_give_the_same_answers_features_and_probes_even_when_an_actor_dies(cluster, lm, data, tmp_path):
    exs, path = data
    # one domain (48 questions, 3 shards) keeps the two calibrations short
    kw = dict(lm=lm, system_prompt="answer", max_new_tokens=4, progress=False, plots=False, batch_size=16, seed=0,
              domains=["alpha"])
    local = calibrate([path], tmp_path / "local", work_dir=tmp_path / "wl", **kw)
    marker = tmp_path / "actor-died"
    opts = RayOptions(actors=2, model_factory=functools.partial(tiny_model_dying_once, str(marker), "llama", 3))
    remote = calibrate([path], tmp_path / "ray", work_dir=tmp_path / "wr", engine="ray", ray_options=opts, **kw)
    assert marker.exists()  # one actor process exited in the middle of a shard, and its shard was redone
    a, b = load_collected(tmp_path / "wl"), load_collected(tmp_path / "wr")
    assert [r["id"] for r in a.rows] == [r["id"] for r in b.rows] == [e.id for e in exs if e.domain == "alpha"]
    for key in ("answer", "label", "finished", "length", "n_cett_tokens"):
        assert [r[key] for r in a.rows] == [r[key] for r in b.rows], key
    for key in ("mean_logprob", "min_logprob", "mean_entropy"):
        np.testing.assert_allclose([r[key] for r in a.rows], [r[key] for r in b.rows], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.features, b.features, rtol=1e-5, atol=1e-6)
    assert set(local["domains"]) == set(remote["domains"]) == {"alpha"}
    for d in local["domains"]:
        pa, pb = _model_section(tmp_path / "local" / f"{d}.json"), _model_section(tmp_path / "ray" / f"{d}.json")
        assert pa["feature_indices"] == pb["feature_indices"] and pa["C"] == pb["C"]
        np.testing.assert_allclose(pa["weights"], pb["weights"], rtol=1e-4, atol=1e-6)
        assert local["domains"][d]["auroc"] == pytest.approx(remote["domains"][d]["auroc"], abs=1e-6)
    # the same shard names, row ids and shapes in both folders (the sha256 may differ in the last bits)
    ma = json.loads((tmp_path / "wl" / "manifest.json").read_text())["shards"]
    mb = json.loads((tmp_path / "wr" / "manifest.json").read_text())["shards"]
    assert [(s["shard"], s["row_ids"], s["shape"]) for s in ma] == [(s["shard"], s["row_ids"], s["shape"]) for s in mb]
    # fitted by screening from either folder's shards: the same probe again, recorded as screened
    sa = calibrate([path], tmp_path / "local-screened", work_dir=tmp_path / "wl", screen_top=10, **kw)
    sb = calibrate([path], tmp_path / "ray-screened", work_dir=tmp_path / "wr", engine="ray", ray_options=opts,
                   screen_top=10, **kw)
    assert sa["probe_fit"]["method"] == sb["probe_fit"]["method"] == "screened" and sb["probe_fit"]["k"] == 10
    pa, pb = _model_section(tmp_path / "local-screened" / "alpha.json"), _model_section(tmp_path / "ray-screened" / "alpha.json")
    assert pa["feature_indices"] == pb["feature_indices"] and len(pa["feature_indices"]) <= 10
    np.testing.assert_allclose(pa["weights"], pb["weights"], rtol=1e-4, atol=1e-6)


def test_a_resumed_ray_run_answers_only_the_shards_that_were_not_committed(cluster, lm, data, tmp_path):
    exs, _ = data
    exs = exs[:40]
    gen = Generator(lm, system_prompt="answer", max_new_tokens=4)
    first = collect(gen, exs, tmp_path, batch_size=8, progress=False)
    shards = tmp_path / "shards"
    # a driver killed while shards 3 and 4 were in flight: their entries were never written
    for n in (3, 4):
        (shards / f"shard-00000{n}.json").unlink()
    kept = {p.name: p.stat().st_mtime_ns for p in shards.glob("shard-*")}
    opts = RayOptions(actors=1, model_factory=functools.partial(tiny_model, "llama", 3))
    col = collect_ray(gen, exs, tmp_path, batch_size=8, options=opts, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in shards.glob("shard-*") if p.name in kept and p.suffix == ".json"} == {
        k: v for k, v in kept.items() if k.endswith(".json")
    }
    new = sorted(p.name for p in shards.glob("shard-*.json") if p.name not in kept)
    assert new == ["shard-000005.json", "shard-000006.json"]  # 16 rows in two new shards, numbered after the rest
    assert col.origin == {"answers_collected": 16, "answers_reused": 24, "reused_shards": 3}  # as the report counts them
    assert [r["id"] for r in col.rows] == [e.id for e in exs]
    np.testing.assert_allclose(col.features, first.features, rtol=1e-5, atol=1e-6)


def test_a_shard_that_kills_its_actor_twice_stops_the_run_and_names_the_rows(cluster, lm, data, tmp_path):
    exs, _ = data
    gen = Generator(lm, system_prompt="answer", max_new_tokens=4)
    marker = str(tmp_path / "died")
    opts = RayOptions(actors=1, model_factory=functools.partial(tiny_model_dying_once, marker, "llama", 3, 2))
    with pytest.raises(DataError, match=rf"the Ray job stopped .*4 row\(s\) have no committed shard \(first: {exs[0].id!r}\).*run again"):
        collect_ray(gen, exs[:4], tmp_path / "w", batch_size=4, options=opts, progress=False)
    assert (tmp_path / "died").exists() and (tmp_path / "died.1").exists()


def test_an_actor_whose_model_differs_from_the_drivers_stops_the_run_before_writing(cluster, lm, data, tmp_path):
    exs, _ = data
    gen = Generator(lm, system_prompt="answer", max_new_tokens=4)
    opts = RayOptions(actors=1, model_factory=functools.partial(tiny_model, "llama", 4))  # other weights
    with pytest.raises(DataError, match=r"shard shard-000000: the actor on .* other settings than the driver \(model_fingerprint differ\)"):
        collect_ray(gen, exs[:4], tmp_path, batch_size=4, options=opts, progress=False)
    assert not list((tmp_path / "shards").glob("shard-*"))


def test_gpus_per_actor_on_a_cluster_without_gpus_is_refused_before_any_actor_starts(cluster, lm, data, tmp_path):
    exs, _ = data
    gen = Generator(lm, system_prompt="answer", max_new_tokens=4)
    with pytest.raises(InputError, match=r"^--gpus-per-actor 1 but the Ray cluster has 0 GPU\(s\).*--gpus-per-actor 0$"):
        collect_ray(gen, exs[:4], tmp_path, options=RayOptions(num_gpus=1), progress=False)
    assert not list((tmp_path / "shards").glob("shard-*"))


def test_more_cpus_per_actor_than_any_node_has_is_refused_before_any_actor_starts(cluster, lm, data, tmp_path):
    exs, _ = data
    gen = Generator(lm, system_prompt="answer", max_new_tokens=4)
    with pytest.raises(InputError, match=r"^--cpus-per-actor 3 but no node of the Ray cluster has more than 2 CPU\(s\)"):
        collect_ray(gen, exs[:4], tmp_path, options=RayOptions(num_cpus=3), progress=False)
    assert not list((tmp_path / "shards").glob("shard-*"))


def test_an_unreachable_address_is_refused_with_the_address(lm, data, tmp_path):
    exs, _ = data
    gen = Generator(lm, system_prompt="answer", max_new_tokens=4)
    with pytest.raises(InputError, match=r"Ray address '127\.0\.0\.1:9' cannot be reached .*ray start --head"):
        collect_ray(gen, exs[:4], tmp_path, options=RayOptions(address="127.0.0.1:9"), progress=False)
    with pytest.raises(InputError, match="is not host:port"):
        collect_ray(gen, exs[:4], tmp_path, options=RayOptions(address="head-node"), progress=False)
    with pytest.raises(InputError, match=r"'ray://127\.0\.0\.1:10001' is Ray Client's, which Ray Data .*ray job submit"):
        collect_ray(gen, exs[:4], tmp_path, options=RayOptions(address="ray://127.0.0.1:10001"), progress=False)


def test_localhost_is_an_address_like_any_other_and_refused_at_once_when_nothing_listens(lm, data, tmp_path):
    """A trial: `--address localhost:6999` skipped the check (it starts with "local", Ray's own word) and Ray retried
    for ever."""
    exs, _ = data
    gen = Generator(lm, system_prompt="answer", max_new_tokens=4)
    with pytest.raises(InputError, match=r"Ray address 'localhost:9' cannot be reached"):
        collect_ray(gen, exs[:4], tmp_path, options=RayOptions(address="localhost:9"), progress=False)


def test_a_job_that_stops_on_a_cluster_names_the_token_file_a_local_ray_left(tmp_path, monkeypatch):
    """Ray 2.59 on writes ~/.ray/auth_token for a local Ray (a run without --address starts one); a later driver sends
    it to a cluster without authentication, whose workers refuse it, and the error said only "run again" (a trial:
    three times, never helping)."""
    from hguard.calibrate import ray_engine

    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(name, raising=False)
    assert ray_engine._token_hint("auto") == ""  # no token file: nothing to say
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("t")
    hint = ray_engine._token_hint("auto")
    assert "InvalidAuthToken" in hint and str(tmp_path / ".ray" / "auth_token") in hint and "move the file away" in hint
    assert ray_engine._token_hint(None) == ""  # a local Ray of the run's own uses that token itself
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    assert ray_engine._token_hint("auto") == ""


def test_the_cli_refuses_an_unreachable_address_before_loading_the_model(tmp_path, capsys):
    from hguard.cli import main

    data = tmp_path / "d.jsonl"
    data.write_text('{"id": "q1", "question": "capital of france ?", "answers": ["paris"], "domain": "geo"}\n')
    rc = main(["calibrate", "--data", str(data), "--out", str(tmp_path / "o"), "--engine", "ray", "--address", "127.0.0.1:9",
               "--model", "no-such-model"])
    assert rc == 2
    assert "Ray address '127.0.0.1:9' cannot be reached" in capsys.readouterr().err
    rc = main(["calibrate", "--data", str(data), "--out", str(tmp_path / "o"), "--address", "127.0.0.1:9"])
    assert rc == 2
    assert "--address is for --engine ray" in capsys.readouterr().err
    rc = main(["calibrate", "--data", str(data), "--out", str(tmp_path / "o"), "--actors", "4", "--cpus-per-actor", "2"])
    assert rc == 2
    assert "--actors, --cpus-per-actor are for --engine ray; add --engine ray or drop them" in capsys.readouterr().err
    rc = main(["calibrate", "--data", str(data), "--out", str(tmp_path / "o"), "--gpus-per-actor", "0"])  # its default value, given
    assert rc == 2
    assert "--gpus-per-actor is for --engine ray" in capsys.readouterr().err


def test_the_cli_gives_ray_the_options_set_and_ray_options_defaults_for_the_rest():
    from hguard.calibrate.ray_engine import RayOptions
    from hguard.cli import _ray_options, build_parser

    args = build_parser().parse_args(["calibrate", "--data", "d.jsonl", "--out", "o", "--engine", "ray", "--actors", "3"])
    assert _ray_options(args) == RayOptions(actors=3, device="auto")
    args = build_parser().parse_args(["calibrate", "--data", "d.jsonl", "--out", "o"])
    assert _ray_options(args) is None


def test_an_address_that_answers_but_is_no_ray_gcs_is_refused_at_once(tmp_path):
    """A trial: a dashboard's or any HTTP port passed the connect check, and ray.init retried it for minutes."""
    import http.server
    import socket
    import threading

    from hguard.calibrate.ray_engine import check_address

    httpd = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with pytest.raises(InputError, match=r"answers, but not as a Ray cluster's GCS \(it replied b'"):
            check_address(f"127.0.0.1:{httpd.server_address[1]}")
    finally:
        httpd.shutdown()
    # a gRPC server (what a GCS is) answers HTTP/2's preface with a SETTINGS frame: that passes
    grpc = socket.create_server(("127.0.0.1", 0))

    def answer():
        conn, _ = grpc.accept()
        with conn:
            conn.recv(64)
            conn.sendall(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")

    threading.Thread(target=answer, daemon=True).start()
    check_address(f"127.0.0.1:{grpc.getsockname()[1]}")
    grpc.close()
    # a bracketed IPv6 address is read as one, not looked up as a name with its brackets
    with pytest.raises(InputError, match=r"Ray address '\[::1\]:9' cannot be reached") as info:
        check_address("[::1]:9")
    assert "Name or service not known" not in str(info.value)


def test_negative_actor_resources_are_refused_by_the_cli(tmp_path, capsys):
    from hguard.cli import main

    for flag in ("--cpus-per-actor", "--gpus-per-actor"):
        with pytest.raises(SystemExit):
            main(["calibrate", "--data", "d.jsonl", "--out", str(tmp_path / "o"), "--engine", "ray", flag, "-1"])
        assert f"argument {flag}: must be a number of at least 0" in capsys.readouterr().err


def test_a_refused_connection_names_the_token_file_and_the_mode_that_sends_it(tmp_path, monkeypatch):
    """A trial: a cluster started where a local Ray had left ~/.ray/auth_token asked for it, the driver sent none,
    and the error named neither the file nor RAY_AUTH_MODE=token (the README's RAY_AUTH_MODE=disabled did not help)."""
    from hguard.calibrate import ray_engine

    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("t")
    hint = ray_engine._token_hint("127.0.0.1:6379", connecting=True)
    assert str(tmp_path / ".ray" / "auth_token") in hint and "RAY_AUTH_MODE=token" in hint


def test_without_address_the_run_starts_its_own_ray_or_checks_ray_address(monkeypatch):
    """A data team's trial: a run without --address joined a cluster a `ray start` had left on the machine (the
    README says a local Ray is started for the run), retried an unreachable RAY_ADDRESS for minutes where --address
    is refused at once, and a ray:// RAY_ADDRESS said to install ray[client]."""
    import socket
    from types import SimpleNamespace

    from hguard.calibrate import ray_engine

    calls = []
    fake = SimpleNamespace(is_initialized=lambda: False, init=lambda **kw: calls.append(kw))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert ray_engine._connect(fake, None) is True
    assert calls[-1]["address"] == "local"  # a Ray of the run's own, not one found on the machine
    monkeypatch.setenv("RAY_ADDRESS", "ray://127.0.0.1:10001")
    with pytest.raises(InputError, match=r"RAY_ADDRESS .*Ray Client's.*unset RAY_ADDRESS"):
        ray_engine._connect(fake, None)
    with socket.socket() as free:  # a port nobody listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    with pytest.raises(InputError, match=r"RAY_ADDRESS .*cannot be reached"):
        ray_engine._connect(fake, None)
    assert len(calls) == 1  # neither reached ray.init
    with pytest.raises(InputError, match=r"a port of 1 to 65535"):
        ray_engine.check_address("127.0.0.1:99999")


def test_the_command_checks_ray_address_before_anything_runs(tmp_path, monkeypatch, capsys):
    """A review: `RAY_ADDRESS=ray://...` was refused only after the model had loaded (minutes on a real model), with
    the output and work folders made, where the same --address is refused at once."""
    from hguard.calibrate import pipeline
    from hguard.cli import main as cli_main

    def reached(*a, **k):
        raise AssertionError("the calibration started")

    monkeypatch.setattr(pipeline, "calibrate", reached)
    monkeypatch.setenv("RAY_ADDRESS", "ray://127.0.0.1:10001")
    data = tmp_path / "d.jsonl"
    data.write_text('{"id": "a", "question": "q?", "answers": ["x"], "domain": "geo"}\n')
    args = ["calibrate", "--data", str(data), "--out", str(tmp_path / "out"), "--engine", "ray"]
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert "RAY_ADDRESS (the environment's; no --address was given)" in err and "Ray Client's" in err
    assert not (tmp_path / "out").exists()

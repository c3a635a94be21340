"""The shard format both collection engines write (manifest, refusals, failed rows) and the
streaming screening fit over it, on a tiny random model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hguard.calibrate.collect import collect, load_collected
from hguard.calibrate.screen import feature_stats, fit_screened, load_columns, top_k
from hguard.calibrate.shards import MANIFEST, ShardStore, sha256_file
from hguard.errors import DataError
from hguard.generation import Generator
from hguard.testing import tiny_examples, tiny_model


@pytest.fixture(scope="module")
def lm():
    return tiny_model("llama", seed=3)


@pytest.fixture(scope="module")
def examples(lm):
    return tiny_examples(lm, n_per_domain=24)


@pytest.fixture(scope="module")
def collected(lm, examples, tmp_path_factory):
    work = tmp_path_factory.mktemp("work")
    col = collect(Generator(lm, system_prompt="answer", max_new_tokens=4), examples, work, batch_size=16, progress=False)
    return work, col


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_shards_carry_a_manifest_with_fingerprint_prompt_mode_ids_shape_and_sha256(collected, lm, examples):
    work, col = collected
    store = ShardStore(work)
    entries = store.entries()
    assert [len(e["row_ids"]) for e in entries] == [16, 16, 16]
    import stat  # questions and answers in clear: owner and group only, whatever the umask (a security review)

    assert {stat.S_IMODE(p.stat().st_mode) for p in work.rglob("shard-*")} == {0o640}
    assert [i for e in entries for i in e["row_ids"]] == [e.id for e in examples]
    gen = Generator(lm, system_prompt="answer", max_new_tokens=4)
    for e in entries:
        assert e["model_fingerprint"] == lm.fingerprint
        assert e["prompt_mode"] == {
            "chat_template_fingerprint": gen.fingerprints["chat_template_fingerprint"],
            "system_prompt_fingerprint": gen.system_prompt_fingerprint,
            "max_new_tokens": 4,
        }
        assert e["shape"] == [16, gen.n_features] and e["dtype"] == "float32"
        assert e["sha256"] == sha256_file(work / "shards" / e["file"])
    manifest = json.loads((work / MANIFEST).read_text())
    assert [s["shard"] for s in manifest["shards"]] == [e["shard"] for e in entries]
    # the rows carry the judge's labels and the confidence signals next to the features
    assert {r["label"] for r in col.rows} <= {"correct", "hallucinated", "refusal"}
    fresh = gen.generate([e.question for e in examples[:16]], batch_size=16)
    np.testing.assert_allclose(col.features[:16], np.stack([g.cett for g in fresh]), rtol=1e-5, atol=1e-7)
    assert [r["answer"] for r in col.rows[:16]] == [g.text for g in fresh]


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("model_fingerprint", "tiny:another", "model fingerprint 'tiny:another'"),
        ("prompt_mode", {"chat_template_fingerprint": "x", "system_prompt_fingerprint": "y", "max_new_tokens": 4}, "prompt mode"),
    ],
)
def test_a_shard_from_another_model_or_prompt_mode_is_refused_by_name(collected, tmp_path, field, value, message):
    work = _copy(collected[0], tmp_path / "w")
    path = work / "shards" / "shard-000001.json"
    entry = json.loads(path.read_text())
    entry[field] = value
    path.write_text(json.dumps(entry))
    with pytest.raises(DataError, match=f"shard .*shard-000001.json.*{message}"):
        load_collected(work)


def test_a_shard_whose_sha256_does_not_match_is_refused_by_name(collected, tmp_path):
    work = _copy(collected[0], tmp_path / "w")
    path = work / "shards" / "shard-000002.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"shard .*shard-000002.safetensors has sha256 .* remove the shard"):
        load_collected(work)
    with pytest.raises(DataError, match="shard-000002"):
        feature_stats(work, [r["id"] for r in collected[1].rows], [0] * len(collected[1].rows))


def test_an_entry_whose_stored_answers_were_edited_is_refused_by_name_and_an_older_unhashed_one_is_read_and_said(
        collected, tmp_path):
    """An auditor's trial: rewriting beta's hallucinated answers in the shard entries (features untouched) to an accepted
    alias silently relabelled them and changed the fit, though the README said a shard that does not match its entry
    is refused."""
    from hguard.calibrate import shards as shards_mod

    work = _copy(collected[0], tmp_path / "w")
    path = work / "shards" / "shard-000001.json"
    entry = json.loads(path.read_text())
    assert entry["entry_sha256"] == shards_mod.entry_hash(entry)
    flipped = "hallucinated" if entry["rows"][0]["label"] == "correct" else "correct"
    for key, edit in (("answer", "an edited answer"), ("label", flipped)):
        changed = json.loads(json.dumps(entry))
        changed["rows"][0][key] = edit
        path.write_text(json.dumps(changed))
        with pytest.raises(DataError, match=r"shard .*shard-000001.json: its entry was changed after it was written.*"
                                            r"delete the shard .* or use a new --work folder"):
            load_collected(work)
    # an entry an older release wrote (no entry_sha256) is read, and said once
    for p in (work / "shards").glob("shard-*.json"):
        old = json.loads(p.read_text()) if p != path else entry
        old.pop("entry_sha256")
        p.write_text(json.dumps(old))
    shards_mod._UNHASHED_SAID.discard(work.resolve())
    # a review: an edited entry whose hash was removed was said to be an older release's
    with pytest.warns(UserWarning, match=r"3 shard entries in .* \(first shard-000000\) have no entry_sha256 \(written "
                                         r"by an older hguard, or the hash was removed\): .* read unchecked") as said:
        again = load_collected(work)
        load_collected(work)
    assert len([w for w in said if "entry_sha256" in str(w.message)]) == 1
    assert [r["answer"] for r in again.rows] == [r["answer"] for r in collected[1].rows]


def test_a_folder_of_the_older_format_is_refused_with_the_fix(tmp_path, lm, examples):
    (tmp_path / "collection.json").write_text(json.dumps({"format": 1}))
    with pytest.raises(DataError, match="format 1.*delete this one"):
        collect(Generator(lm, system_prompt="answer", max_new_tokens=4), examples[:2], tmp_path, progress=False)


def test_a_folder_of_the_earlier_format_is_upgraded_without_answering_again(collected, tmp_path, lm, examples, monkeypatch):
    from hguard.calibrate.shards import collection_settings

    _, col = collected
    gen = Generator(lm, system_prompt="answer", max_new_tokens=4)
    (tmp_path / "shards").mkdir()
    (tmp_path / "collection.json").write_text(json.dumps({**collection_settings(gen), "format": 1}))
    lines = []
    for k in (0, 1):
        np.save(tmp_path / "shards" / f"shard-00000{k}.npy", col.features[16 * k : 16 * k + 16], allow_pickle=False)
        lines += [json.dumps({**r, "shard": f"shard-00000{k}.npy", "index": i}) for i, r in enumerate(col.rows[16 * k : 16 * k + 16])]
    (tmp_path / "rows.jsonl").write_text("\n".join(lines) + '\n{"id": "torn')
    calls = []
    real = gen.generate
    monkeypatch.setattr(gen, "generate", lambda q, *a, **k: (calls.append(len(q)), real(q, *a, **k))[1])
    again = collect(gen, examples, tmp_path, batch_size=16, progress=False)
    assert calls == [16]  # only the third batch, which format 1 never had
    np.testing.assert_array_equal(again.features, col.features)
    assert [r["answer"] for r in again.rows] == [r["answer"] for r in col.rows]
    assert (tmp_path / "rows.jsonl").exists() and (tmp_path / "shards" / "shard-000000.npy").exists()
    assert json.loads((tmp_path / "collection.json").read_text())["format"] == 2


def test_a_failing_row_is_retried_and_one_failing_twice_is_reported_not_dropped(tmp_path, lm, examples, monkeypatch):
    gen = Generator(lm, system_prompt="answer", max_new_tokens=4)
    real = gen.generate
    flaky, broken = examples[1].question, examples[5].question
    seen = {"flaky": 0}

    def generate(questions, *a, **k):
        if broken in questions:
            raise RuntimeError("CUDA error: an illegal memory access")
        if flaky in questions and seen["flaky"] == 0:
            seen["flaky"] += 1
            raise RuntimeError("transient")
        return real(questions, *a, **k)

    monkeypatch.setattr(gen, "generate", generate)
    with pytest.raises(DataError, match=rf"1 row\(s\) failed twice .*{examples[5].id!r} in shard shard-000000: RuntimeError: CUDA error"):
        collect(gen, examples[:8], tmp_path, batch_size=8, progress=False)
    store = ShardStore(tmp_path)
    assert set(store.finished()) == {e.id for e in examples[:8]} - {examples[5].id}
    assert list(store.failed()) == [examples[5].id]
    # once the cause is gone, a rerun answers only that row
    calls = []
    monkeypatch.setattr(gen, "generate", lambda q, *a, **k: (calls.append(list(q)), real(q, *a, **k))[1])
    col = collect(gen, examples[:8], tmp_path, batch_size=8, progress=False)
    assert calls == [[broken]]
    assert [r["id"] for r in col.rows] == [e.id for e in examples[:8]]
    assert store.failed() == {}


# ------------------------------------------------------------------------------------ screening


def _y(rows):
    return np.array([1 if r["label"] == "hallucinated" else 0 for r in rows])


def test_streamed_statistics_equal_the_in_memory_ones(collected):
    work, col = collected
    ids = [r["id"] for r in col.rows]
    y = _y(col.rows)
    st = feature_stats(work, ids, y)
    X = col.features.astype(np.float64)
    for c in (0, 1):
        np.testing.assert_allclose(st.mean[c], X[y == c].mean(0), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(st.var[c], X[y == c].var(0, ddof=1), rtol=1e-5, atol=1e-9)
    np.testing.assert_array_equal(st.min, X.min(0))
    cols = top_k(st, 10)
    assert cols.size == 10 and np.all(np.diff(cols) > 0)
    assert st.score[cols].min() >= np.sort(st.score)[-10]
    np.testing.assert_array_equal(load_columns(work, ids[::-1], cols), col.features[::-1][:, cols])


@pytest.mark.filterwarnings("ignore:the probe does not beat chance")
def test_screened_fit_is_the_in_memory_fit_when_k_keeps_every_feature_and_a_full_probe_otherwise(collected, tmp_path):
    from hguard.probe import HNeuronProbe

    work, col = collected
    ids = [r["id"] for r in col.rows]
    y = _y(col.rows)
    lengths = np.array([r["length"] for r in col.rows], float)
    n_features = col.features.shape[1]
    ref = HNeuronProbe(cv=3, n_layers=3, d_ff=48, random_state=0).fit(col.features, y, lengths=lengths)
    same = fit_screened(work, ids, y, k=n_features, lengths=lengths, cv=3, n_layers=3, d_ff=48, random_state=0)
    np.testing.assert_array_equal(same.feature_indices_, ref.feature_indices_)
    np.testing.assert_allclose(same.weights_, ref.weights_, rtol=1e-6, atol=1e-9)
    assert same.C_ == ref.C_
    small = fit_screened(work, ids, y, k=12, lengths=lengths, cv=3, n_layers=3, d_ff=48, random_state=0)
    assert set(small.feature_indices_) <= set(top_k(feature_stats(work, ids, y), 12))
    assert small.n_features_in_ == n_features and small.screening_["kept"] == 12
    # an ordinary probe: scores full rows, saves and loads
    np.testing.assert_allclose(
        small.decision_function(col.features, lengths=lengths),
        small.decision_function_subset(col.features[:, small.feature_indices_], lengths=lengths),
    )
    small.save(tmp_path / "p.json", metadata={"domain": "alpha"})
    back, _ = HNeuronProbe.load(tmp_path / "p.json")
    np.testing.assert_array_equal(back.feature_indices_, small.feature_indices_)
    assert back.n_layers_ == 3 and back.d_ff_ == 48

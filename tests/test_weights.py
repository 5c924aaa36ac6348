"""The weights store: resolution order, verification, errors, and downloads from a (fake, local) HuggingFace hub."""

from __future__ import annotations

import shutil

import pytest
import torch

from talkinghead_nb.engine import Poser
from talkinghead_nb.weights import (
    HF_REPO,
    HF_REVISION,
    NETWORKS,
    STAGING,
    WeightsError,
    WeightsStore,
    embedded_folder,
)


def _copy_embedded(folder):
    folder.mkdir(parents=True)
    for name in NETWORKS:
        shutil.copy(embedded_folder() / f"{name}.pt", folder / f"{name}.pt")
    return folder


def _publish(hub, variant: str, source_folder) -> None:
    for name in NETWORKS:
        hub.files[f"{variant}/{name}.pt"] = (source_folder / f"{name}.pt").read_bytes()


def test_order_explicit_folder_then_models_then_embedded(tmp_path):
    models = tmp_path / "models"
    store = WeightsStore(models, allow_download=False)
    assert store.resolve("separable_float").source == "embedded"
    half = store.resolve("separable_half")
    assert (half.source, half.cast_from) == ("embedded", "separable_float")
    _copy_embedded(models / "separable_float")
    assert store.resolve("separable_float").source == "models"
    explicit = _copy_embedded(tmp_path / "mine")
    resolved = store.resolve("separable_float", explicit)
    assert (resolved.source, resolved.folder) == ("folder", explicit)


def test_missing_variant_without_download_says_where_it_looked(tmp_path):
    with pytest.raises(WeightsError) as e:
        WeightsStore(tmp_path / "models", allow_download=False).resolve("standard_float")
    message = str(e.value)
    assert str(tmp_path / "models" / "standard_float") in message and "editor.pt" in message


def test_incomplete_explicit_folder_names_the_missing_file(tmp_path):
    folder = _copy_embedded(tmp_path / "mine")
    (folder / "face_morpher.pt").unlink()
    with pytest.raises(WeightsError, match=r"face_morpher\.pt is missing from .*mine"):
        WeightsStore(tmp_path / "models").resolve("separable_float", folder)


def test_partial_models_folder_is_an_error_when_offline(tmp_path):
    folder = _copy_embedded(tmp_path / "models" / "separable_float")
    (folder / "editor.pt").unlink()
    with pytest.raises(WeightsError, match=r"editor\.pt is missing"):
        WeightsStore(tmp_path / "models", allow_download=False).resolve("separable_float")


def test_corrupt_known_file_fails_its_checksum(tmp_path):
    folder = _copy_embedded(tmp_path / "mine")
    data = bytearray((folder / "editor.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "editor.pt").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"editor\.pt is corrupt.*SHA-256"):
        WeightsStore(allow_download=False).load("separable_float", folder)


def test_unreadable_unknown_file_is_reported(tmp_path):
    folder = tmp_path / "standard_half"
    folder.mkdir()
    for name in NETWORKS:
        (folder / f"{name}.pt").write_bytes(b"not a pytorch file")
    with pytest.raises(WeightsError, match=r"eyebrow_decomposer\.pt cannot be read as PyTorch weights"):
        WeightsStore(allow_download=False).load("standard_half", folder)


def test_weights_of_the_wrong_architecture_are_named(tmp_path):
    folder = _copy_embedded(tmp_path / "standard_float")  # separable weights in a standard folder
    with pytest.raises(WeightsError, match=r"eyebrow_decomposer\.pt does not fit the standard_float"):
        Poser("standard_float", "cpu", weights_folder=folder)


def test_download_fetches_only_the_five_files_of_the_variant(tmp_path, fake_hub, monkeypatch):
    _publish(fake_hub, "separable_half", embedded_folder())
    _publish(fake_hub, "standard_float", embedded_folder())  # present in the repo, must not be fetched
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    models = tmp_path / "models"
    store = WeightsStore(models)
    (models / "separable_half").mkdir(parents=True)
    (models / "separable_half" / "editor.pt").write_bytes((embedded_folder() / "editor.pt").read_bytes())
    resolved, state_dicts = store.load("separable_half")  # partial folder → the four missing files are fetched
    assert resolved.source == "download"
    fetched = sorted(path.split(f"/resolve/{HF_REVISION}/")[1] for method, path in fake_hub.requests
                     if method == "GET" and f"/resolve/{HF_REVISION}/" in path)
    assert fetched == sorted(f"separable_half/{n}.pt" for n in NETWORKS if n != "editor")
    assert sorted(p.name for p in (models / "separable_half").glob("*.pt")) == sorted(f"{n}.pt" for n in NETWORKS)
    assert not (models / "standard_float").exists()
    assert set(state_dicts) == set(NETWORKS) and all(isinstance(v, dict) for v in state_dicts.values())


def test_interrupted_download_is_repaired_on_the_next_try(tmp_path, fake_hub, monkeypatch):
    _publish(fake_hub, "standard_half", embedded_folder())
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    models = tmp_path / "models"
    fake_hub.truncate_next_gets = 10**6  # huggingface_hub resumes by itself a few times; make it give up
    with pytest.raises(WeightsError, match="could not download standard_half/eyebrow_decomposer.pt"):
        WeightsStore(models).resolve("standard_half")
    assert not list(models.glob("standard_half/*.pt")), "no half-written file in place"
    fake_hub.truncate_next_gets = 0
    resolved = WeightsStore(models).resolve("standard_half")
    for name in NETWORKS:
        assert (resolved.folder / f"{name}.pt").read_bytes() == fake_hub.files[f"standard_half/{name}.pt"]
    assert not list(models.rglob("*.incomplete"))


def test_corrupt_downloaded_file_is_fetched_again(tmp_path, fake_hub, monkeypatch):
    _publish(fake_hub, "separable_float", embedded_folder())
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    folder = _copy_embedded(tmp_path / "models" / "separable_float")
    (folder / "face_morpher.pt").write_bytes(b"garbage")
    resolved, state_dicts = WeightsStore(tmp_path / "models").load("separable_float")
    assert (folder / "face_morpher.pt").read_bytes() == fake_hub.files["separable_float/face_morpher.pt"]
    assert torch.equal(state_dicts["face_morpher"]["body.downsample_blocks.0.0.weight"],
                       torch.load(embedded_folder() / "face_morpher.pt", weights_only=True)
                       ["body.downsample_blocks.0.0.weight"])
    assert not list((tmp_path / "models" / STAGING).rglob("*.pt")), "the verified download was moved into place"


def _corrupt_local_copy(models, network: str = "face_morpher"):
    folder = _copy_embedded(models / "separable_float")
    (folder / f"{network}.pt").write_bytes(b"garbage")
    return folder / f"{network}.pt"


@pytest.mark.parametrize("hub_fault", ["file missing from the hub", "connection drops", "file fails its check"])
def test_corrupt_file_stays_until_a_verified_copy_replaces_it(tmp_path, fake_hub, monkeypatch, hub_fault):
    _publish(fake_hub, "separable_float", embedded_folder())
    if hub_fault == "file missing from the hub":
        del fake_hub.files["separable_float/face_morpher.pt"]
    elif hub_fault == "connection drops":
        fake_hub.truncate_next_gets = 10**6
    else:
        fake_hub.files["separable_float/face_morpher.pt"] = b"also garbage, but other garbage"
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    corrupt = _corrupt_local_copy(tmp_path / "models")
    with pytest.raises(WeightsError) as e:
        WeightsStore(tmp_path / "models").load("separable_float")
    message = str(e.value)
    assert f"{corrupt} is corrupt" in message and "fetching a fresh copy of separable_float/face_morpher.pt" in message
    assert "left as it was" in message
    assert corrupt.read_bytes() == b"garbage", "the file in place is kept when no verified copy arrived"
    assert not list((tmp_path / "models" / STAGING).rglob("*.pt")), "nothing unverified is left to be picked up"


def test_downloads_ask_for_the_pinned_revision(tmp_path, fake_hub, monkeypatch):
    assert WeightsStore(tmp_path).revision == HF_REVISION
    assert WeightsStore(tmp_path, hf_repo="someone/else").revision == "main"
    assert HF_REPO == fake_hub.repo
    _publish(fake_hub, "standard_half", embedded_folder())  # the fake hub serves them at "main" only
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    pinned = "89abcdef0123456789abcdef0123456789abcdef"
    with pytest.raises(WeightsError, match=f"standard_half/eyebrow_decomposer.pt from {HF_REPO} .revision {pinned}"):
        WeightsStore(tmp_path / "models", revision=pinned).resolve("standard_half")
    paths = [path for _, path in fake_hub.requests]
    assert paths and all(f"/{HF_REPO}/resolve/{pinned}/standard_half/" in path for path in paths), paths

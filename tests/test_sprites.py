"""The sprite export and the sprites / check / repair commands, with the real engine."""

from __future__ import annotations

import hashlib
import io
import itertools
import json

import numpy as np
from PIL import Image

from talkinghead_nb import cli
from talkinghead_nb.character import example_path
from talkinghead_nb.emotions import EMOTIONS, EmotionLibrary, parse_templates
from talkinghead_nb.sprites import export_sprites


def test_export_writes_28_distinct_sprites_and_the_templates(poser, character, tmp_path):
    templates = EmotionLibrary().load()
    export = export_sprites(poser, character, tmp_path / "sprites", templates, progress=False)
    folder = tmp_path / "sprites"
    assert sorted(export.written) == sorted(EMOTIONS) and not export.skipped
    digests, faces = set(), {}
    for name in EMOTIONS:
        image = Image.open(folder / f"{name}.png")
        assert image.format == "PNG" and image.mode == "RGBA" and image.size == (512, 512)
        digests.add(hashlib.sha256(np.asarray(image).tobytes()).hexdigest())
        rgba = np.asarray(image)[32:224, 160:352].astype(np.float32)
        faces[name] = rgba[..., :3] * rgba[..., 3:] / 255
    assert len(digests) == 28  # every emotion looks different
    # ... and reads as itself on the face: no two alike (the closest pair of the first templates, joy and relief:
    # 2.7 levels of mean difference; now 4.2)
    closest = min((float(np.abs(faces[a] - faces[b]).mean()), a, b) for a, b in itertools.combinations(EMOTIONS, 2))
    assert closest[0] >= 3.5, f"{closest[1]} and {closest[2]} look alike ({closest[0]:.2f})"
    saved, problems = parse_templates(json.loads((folder / "_emotions.json").read_text()), "export")
    assert not problems and set(saved) == set(EMOTIONS)
    assert np.allclose(saved["joy"], templates.vector("joy"))
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary files left behind
    assert len(export.contact_sheet().axes) == 28

    joy = (folder / "joy.png").read_bytes()
    (folder / "anger.png").unlink()
    again = export_sprites(poser, character, folder, templates, ["joy", "anger"], progress=False)
    assert again.written == ["anger"] and again.skipped == ["joy"]
    assert (folder / "joy.png").read_bytes() == joy


def test_sprites_command(tmp_path, capsys):
    code = cli.main(["sprites", "crypko_00", str(tmp_path), "--names", "joy,sadness", "--device", "cpu",
                     "--quiet", "--sheet"])
    assert code == 0
    assert {p.name for p in tmp_path.iterdir()} == {"joy.png", "sadness.png", "_emotions.json", "_contact_sheet.png"}
    assert "2 sprite(s) written" in capsys.readouterr().out
    # an unknown emotion is a runtime error (exit 1), not a mistake in the command line (exit 2)
    assert cli.main(["sprites", "crypko_00", str(tmp_path), "--names", "glee", "--device", "cpu"]) == 1
    assert "unknown emotion 'glee'" in capsys.readouterr().err


def test_check_command_exit_codes_and_plots(tmp_path, capsys):
    assert cli.main(["check", "lambda_00", "--plots", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "0 error(s)" in out and (tmp_path / "lambda_00-edges.png").exists()
    rgb = tmp_path / "rgb.png"
    Image.open(example_path("crypko_00")).convert("RGB").save(rgb)
    assert cli.main(["check", str(rgb)]) == 1
    assert "no alpha channel" in capsys.readouterr().out


def test_repair_command_writes_a_new_file_only(tmp_path, capsys):
    source = tmp_path / "tall.png"
    canvas = Image.new("RGBA", (512, 768))
    canvas.paste(Image.open(example_path("crypko_00")).convert("RGBA"), (0, 0))
    canvas.save(source)
    before = source.read_bytes()
    assert cli.main(["repair", str(source), str(tmp_path / "fixed.png"), "--fit", "--specks"]) == 0
    assert source.read_bytes() == before
    fixed = Image.open(tmp_path / "fixed.png")
    assert fixed.size == (512, 512)
    assert cli.main(["repair", str(source), str(source), "--edges"]) == 1  # never overwrites: a runtime error
    assert "input image" in capsys.readouterr().err
    assert Image.open(io.BytesIO(source.read_bytes())).size == (512, 768)

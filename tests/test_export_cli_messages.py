"""The export CLI names the file the user gave when it is not a student (not a file they never typed)."""

from __future__ import annotations

from okdhp_edge.export.__main__ import main


def test_a_file_that_is_not_a_student_is_named_as_given(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    assert main([str(notes)]) == 2
    err = capsys.readouterr().err
    assert f"{notes} is not a student checkpoint: expected NAME.safetensors" in err and "notes.safetensors" not in err

"""Study lists for prediction: image lists, folders, both CSV layouts and the image checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from inference_helpers import write_image

from r2gen.training.study_inputs import (StudyInput, StudyInputError, check_studies, read_studies,
                                         studies_from_csv, studies_from_folder, studies_from_images)


def test_images_form_one_study_named_after_first(tmp_path: Path) -> None:
    studies = studies_from_images([tmp_path / "frontal.png", tmp_path / "lateral.jpg"])
    assert len(studies) == 1
    assert studies[0].id == "frontal"
    assert studies[0].image_paths == (tmp_path / "frontal.png", tmp_path / "lateral.jpg")


def test_images_explicit_study_id(tmp_path: Path) -> None:
    assert studies_from_images([tmp_path / "a.png"], study_id="patient-7")[0].id == "patient-7"


def test_images_empty_list_rejected() -> None:
    with pytest.raises(StudyInputError, match="no image given"):
        studies_from_images([])


def test_folder_one_study_per_image(tmp_path: Path) -> None:
    write_image(tmp_path / "b.png", seed=0)
    write_image(tmp_path / "nested" / "a.JPG", seed=1)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.png").write_bytes(b"")
    studies = studies_from_folder(tmp_path)
    assert [study.id for study in studies] == ["b", "nested/a"]
    assert studies[1].image_paths == (tmp_path / "nested" / "a.JPG",)


def test_folder_without_images_rejected(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(StudyInputError, match=str(tmp_path)):
        studies_from_folder(tmp_path)


def test_csv_row_per_view_groups_by_id(tmp_path: Path) -> None:
    (tmp_path / "list.csv").write_text("id,image_path\ns1,views/f.png\ns2,/abs/x.png\ns1,views/l.png\n")
    studies = studies_from_csv(tmp_path / "list.csv")
    assert studies == [
        StudyInput("s1", (tmp_path / "views" / "f.png", tmp_path / "views" / "l.png")),
        StudyInput("s2", (Path("/abs/x.png"),)),
    ]


def test_csv_semicolon_separated_views(tmp_path: Path) -> None:
    (tmp_path / "list.csv").write_text("image_paths,id\nf.png; l.png ,s1\ng.png,s2\n")
    studies = studies_from_csv(tmp_path / "list.csv")
    assert studies[0] == StudyInput("s1", (tmp_path / "f.png", tmp_path / "l.png"))
    assert studies[1] == StudyInput("s2", (tmp_path / "g.png",))


@pytest.mark.parametrize("text, message", [
    ("name,image_path\na,b.png\n", "header"),
    ("id,image_path,image_paths\na,b.png,c.png\n", "header"),
    ("id,image_path\n", "no study rows"),
    ("id,image_path\na,\n", "line 2: empty"),
    ("id,image_paths\na,x.png\na,y.png\n", "line 3: id 'a' is repeated"),
])
def test_csv_invalid_content_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "list.csv"
    path.write_text(text)
    with pytest.raises(StudyInputError) as caught:
        studies_from_csv(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_read_studies_rejects_other_files(tmp_path: Path) -> None:
    with pytest.raises(StudyInputError, match="input not found"):
        read_studies(tmp_path / "missing")
    (tmp_path / "list.txt").write_text("id,image_path\n")
    with pytest.raises(StudyInputError, match=r"\.csv study list"):
        read_studies(tmp_path / "list.txt")


def test_read_studies_dispatches_folder_and_csv(tmp_path: Path) -> None:
    image = write_image(tmp_path / "images" / "x.png", seed=0)
    (tmp_path / "list.csv").write_text(f"id,image_path\nstudy,{image}\n")
    assert read_studies(tmp_path / "images") == [StudyInput("x", (image,))]
    assert read_studies(tmp_path / "list.csv") == [StudyInput("study", (image,))]


def test_check_accepts_png_jpeg_and_16_bit(tmp_path: Path) -> None:
    views = (write_image(tmp_path / "a.png", 0), write_image(tmp_path / "b.jpg", 1),
             write_image(tmp_path / "c.png", 2, mode="I;16"))
    check_studies([StudyInput("s", views)], decode_size=64)


def test_check_lists_every_bad_file(tmp_path: Path) -> None:
    good = write_image(tmp_path / "good.png", seed=0)
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:200])
    studies = [StudyInput("a", (good, tmp_path / "missing.png")), StudyInput("b", (text, truncated)),
               StudyInput("c", (tmp_path,))]
    with pytest.raises(StudyInputError) as caught:
        check_studies(studies)
    message = str(caught.value)
    assert message.startswith("4 invalid input(s)")
    assert f"{tmp_path / 'missing.png'}: image file not found" in message
    assert f"{text}: cannot decode image" in message
    assert f"{truncated}: cannot decode image" in message
    assert "is a folder" in message
    assert str(good) not in message


def test_check_rejects_repeated_ids(tmp_path: Path) -> None:
    image = write_image(tmp_path / "a.png", seed=0)
    with pytest.raises(StudyInputError, match="'s' is used more than once"):
        check_studies([StudyInput("s", (image,)), StudyInput("s", (image,))])

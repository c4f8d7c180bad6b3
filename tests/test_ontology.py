"""The shared AudioSet ontology: the bundled real files, lookups, the graph, vectorized MID encoding."""

from __future__ import annotations

import importlib.resources

import numpy as np
import pyarrow as pa
import pytest

from avsets.core.errors import MetadataError
from avsets.metadata.ontology import (
    AudioSetOntology,
    check_unknown_labels,
    label_space_527,
    mids_527,
    split_label_strings,
)


@pytest.fixture(scope="module")
def onto() -> AudioSetOntology:
    return AudioSetOntology.load()


def test_bundled_files_are_package_data():
    folder = importlib.resources.files("avsets") / "data" / "audioset"
    assert (folder / "ontology.json").is_file()
    assert (folder / "class_labels_indices.csv").is_file()
    assert "provenance" in (folder / "PROVENANCE.md").read_text().lower()


def test_counts_and_label_space_order(onto):
    assert len(onto) == 632
    names = label_space_527()
    assert len(names) == 527 == len(set(names))
    assert names[0] == "Speech" and names[1] == "Male speech, man speaking" and names[-1] == "Field recording"
    assert mids_527()[0] == "/m/09x0r"
    assert AudioSetOntology.load() is onto  # parsed once


def test_lookups(onto):
    assert onto.name_of("/m/09x0r") == "Speech"
    assert onto.mid_of("Speech") == "/m/09x0r"
    assert onto.index_of("/m/0k5j") == names_index("Aircraft")
    assert onto.mid_of("Human sounds") == "/m/0dgw9r"  # an ontology node outside the 527 classes
    with pytest.raises(KeyError, match="/m/nope"):
        onto.name_of("/m/nope")
    with pytest.raises(KeyError, match="not one of the 527"):
        onto.index_of("/m/0dgw9r")
    first = onto.entry("/m/0dgw9r")
    assert first.abstract and first.name == "Human sounds" and len(first.child_ids) == 9


def names_index(name: str) -> int:
    return label_space_527().index(name)


def test_graph_is_consistent(onto):
    for mid, entry in onto.entries.items():
        for child in entry.child_ids:
            assert mid in onto.parents(child)
    dog = onto.mid_of("Dog")
    assert onto.mid_of("Domestic animals, pets") in onto.parents(dog)
    assert onto.mid_of("Animal") in onto.ancestors(dog)
    assert onto.mid_of("Bark") in onto.descendants(dog)
    assert onto.mid_of("Animal") in onto.roots()
    assert all(not onto.parents(r) for r in onto.roots())


def test_split_label_strings_trims_and_drops_empty():
    out = split_label_strings(pa.array(["/m/a,/m/b", "", None, " /m/c , ", "/m/d"]))
    assert out.to_pylist() == [["/m/a", "/m/b"], [], [], ["/m/c"], ["/m/d"]]
    assert split_label_strings(pa.array([["/m/a", " "], None])).to_pylist() == [["/m/a"], []]


def test_mids_to_indices_vectorized(onto):
    enc = onto.mids_to_indices(pa.array(["/m/09x0r,/m/04rlf", "/m/zzz,/m/09x0r", "", "/m/0k4j"]))
    assert enc.indices.to_pylist() == [[0, 137], [0], [], [onto.index_of("/m/0k4j")]]
    assert enc.unknown_rows.tolist() == [1] and enc.unknown_values == ["/m/zzz"]
    by_name = onto.mids_to_indices(pa.array([["Speech", "/m/04rlf", "Music"]]), names=True)
    assert by_name.indices.to_pylist() == [[0, 137, 137]]


def test_unknown_label_policies(onto):
    enc = onto.mids_to_indices(pa.array(["/m/09x0r", "/m/zzz"]))
    with pytest.raises(MetadataError, match=r"meta\.txt, line 7.*'/m/zzz'") as info:
        check_unknown_labels(enc, file="meta.txt", lines=np.array([3, 7]), field_name="MID", errors="raise",
                             drop_unknown=False)
    assert info.value.line == 7 and info.value.field == "MID"
    keep = check_unknown_labels(enc, file="meta.txt", lines=None, field_name="MID", errors="skip",
                                drop_unknown=False)
    assert keep.tolist() == [True, False]
    assert check_unknown_labels(enc, file="m", lines=None, field_name="MID", errors="raise", drop_unknown=True) is None
    assert enc.indices.to_pylist() == [[0], []]

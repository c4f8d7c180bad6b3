"""Build the dataset card (``README.md``) of an export: YAML that stock `datasets` and the Hub read, plus text.

The YAML is produced with `datasets`' own helpers (``MetadataConfigs``, ``DatasetInfosDict``) so it is the
card ``push_to_hub`` would write, and merging another config into an existing card keeps every other
config's ``configs``/``dataset_info`` entries as they are. The corpus card shipped in
``avsets.<corpus>/README.md`` supplies license, pretty name, task categories and tags (its YAML header),
the introduction, source, licence and citation; the rest is generated from what was exported
(``card_body``): a block per exported config (description, columns), a loading section naming the folder
or the repo id and what stock reading needs, an availability table (rows in the metadata vs rows exported,
per config and split) and the manifest hashes. Tags and task categories follow the media the declared
configs hold (no ``video`` for an audio-only copy). Other configs' blocks and rows are carried over.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from datasets import Features
from datasets.info import DatasetInfo, DatasetInfosDict
from datasets.splits import SplitDict, SplitInfo
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from avsets.build.filters import FilterSummary

from .card_body import (
    CONFIGS_END,
    CONFIGS_START,
    LOADING_END,
    LOADING_START,
    config_block,
    config_blocks,
    config_descriptions,
    configs_section,
    loading_section,
    media_kinds,
    render_body,
    replace_region,
    split_sections,
)
from .card_filters import FILTERS_END, FILTERS_START, filters_block, filters_blocks, filters_section

AVAIL_START = "<!-- avsets:availability:start -->"
AVAIL_END = "<!-- avsets:availability:end -->"
_AVAIL_HEADER = (
    "| config | split | rows in metadata | rows exported | share |\n| --- | --- | ---: | ---: | ---: |"
)
_ROW = re.compile(r"^\|\s*([^|]+?)\s*\|\s*([^|]+?)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|")
MANIFEST_START = "<!-- avsets:manifest:start -->"
MANIFEST_END = "<!-- avsets:manifest:end -->"
#: the "Takedowns" note written by ``avsets export --prune`` / ``push --sync`` (``sync.py``); carried over
#: when the card is rebuilt or merged, so a re-export or a push of another config keeps it
TAKEDOWNS_START = "<!-- avsets:takedowns:start -->"
TAKEDOWNS_END = "<!-- avsets:takedowns:end -->"
_MANIFEST_ROW = re.compile(r"^\|\s*([^|]+?)\s*\|\s*([^|]+?)\s*\|\s*(\d+)\s*\|\s*`?([0-9a-f]+)`?\s*\|")
#: YAML keys taken from the corpus card; everything else in it is left to the corpus author
CORPUS_KEYS = ("license", "pretty_name", "task_categories", "task_ids", "tags", "language", "annotations_creators",
               "source_datasets", "multilinguality", "language_creators", "paperswithcode_id", "license_name",
               "license_link", "viewer")


@dataclass
class SplitStats:
    """What the card says about one exported split."""

    num_examples: int
    num_bytes: int  # bytes of the split's Parquet files
    metadata_rows: int


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket for ``n`` rows."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]
    for bound, label in bounds:
        if n < bound:
            return label
    return "n>1T" if n >= 10**12 else "1B<n<10B"


def load_corpus_card(corpus: str) -> str | None:
    """The corpus card shipped with the package (``avsets.<corpus>/README.md``), if any."""
    try:
        return resources.files(f"avsets.{corpus}").joinpath("README.md").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return None


def _parse(text: str | None) -> tuple[DatasetCardData, str]:
    if not text:
        return DatasetCardData(), ""
    card = DatasetCard(text)
    return card.data, card.text


def _avail_rows(body: str) -> dict[tuple[str, str], tuple[int, int]]:
    """The (config, split) -> (rows in metadata, rows exported) rows of a card's availability table."""
    rows: dict[tuple[str, str], tuple[int, int]] = {}
    if AVAIL_START in body and AVAIL_END in body:
        block = body.split(AVAIL_START, 1)[1].split(AVAIL_END, 1)[0]
        for line in block.splitlines():
            m = _ROW.match(line.strip())
            if m and m.group(1) != "config":
                rows[(m.group(1), m.group(2))] = (int(m.group(3)), int(m.group(4)))
    return rows


def _avail_table(rows: dict[tuple[str, str], tuple[int, int]]) -> str:
    lines = [AVAIL_START, "## Availability", "",
             "Rows listed in the corpus metadata vs rows whose media could be found and embedded here.", "",
             _AVAIL_HEADER]
    for (cfg, split), (meta, exported) in sorted(rows.items()):
        share = f"{100.0 * exported / meta:.1f}%" if meta else "-"
        lines.append(f"| {cfg} | {split} | {meta} | {exported} | {share} |")
    lines.append(AVAIL_END)
    return "\n".join(lines)


def _availability(existing_body: str, config: str, splits: dict[str, SplitStats]) -> str:
    rows = {k: v for k, v in _avail_rows(existing_body).items() if k[0] != config}
    for split, st in splits.items():
        rows[(config, split)] = (st.metadata_rows, st.num_examples)
    return _avail_table(rows)


def _strip_generated(body: str) -> str:
    """``body`` without the parts generated from the exported data (availability, manifest, configs, loading)."""
    for start, end in ((AVAIL_START, AVAIL_END), (MANIFEST_START, MANIFEST_END), (CONFIGS_START, CONFIGS_END),
                       (LOADING_START, LOADING_END), (TAKEDOWNS_START, TAKEDOWNS_END), (FILTERS_START, FILTERS_END)):
        if start in body and end in body:
            head, rest = body.split(start, 1)
            body = head + rest.split(end, 1)[1]
    return body.strip()


def _strip_tables(body: str) -> str:
    """``body`` without the availability, filters and manifest tables and the takedowns note (merge_cards
    appends merged ones)."""
    for start, end in ((AVAIL_START, AVAIL_END), (MANIFEST_START, MANIFEST_END), (TAKEDOWNS_START, TAKEDOWNS_END),
                       (FILTERS_START, FILTERS_END)):
        if start in body and end in body:
            head, rest = body.split(start, 1)
            body = head + rest.split(end, 1)[1]
    return body


def _takedowns_note(*bodies: str) -> str | None:
    """The first takedowns note found in ``bodies`` (markers included), if any."""
    for body in bodies:
        if TAKEDOWNS_START in body and TAKEDOWNS_END in body:
            return TAKEDOWNS_START + body.split(TAKEDOWNS_START, 1)[1].split(TAKEDOWNS_END, 1)[0] + TAKEDOWNS_END
    return None


def _media_metadata(data: DatasetCardData) -> set[str]:
    """Tags and task categories that match the media the declared configs hold (an audio-only copy is not
    tagged ``video``); returns the media kinds."""
    kinds: set[str] = set()
    for info in DatasetInfosDict.from_dataset_card_data(data).values():
        kinds |= media_kinds(info.features)
    tags = [t for t in (data.get("tags") or []) if t not in ("audio", "video", "avsets")]
    data["tags"] = tags + [k for k in ("audio", "video") if k in kinds] + ["avsets"]
    if "video" not in kinds and data.get("task_categories"):
        data["task_categories"] = [t for t in data["task_categories"] if not str(t).startswith("video")]
    return kinds


def _declared(data: DatasetCardData) -> list[str]:
    return list(MetadataConfigs.from_dataset_card_data(data))


def set_load_target(text: str, target: str) -> str:
    """The card with its ``Loading`` block naming ``target`` (a repo id at push, the folder of a local export)."""
    data, body = _parse(text)
    if not _declared(data):
        return text
    body = replace_region(body, LOADING_START, LOADING_END, _loading(data, target))
    return f"---\n{data.to_yaml()}\n---\n\n{body.strip()}\n"


def _loading(data: DatasetCardData, target: str) -> str:
    """The loading block for a card's declared configs: ``default`` if there is one, else the first."""
    configs = _declared(data)
    config = "default" if "default" in configs else configs[0]
    infos = DatasetInfosDict.from_dataset_card_data(data)
    kinds = media_kinds(infos[config].features) if config in infos else {"audio"}
    splits = list(infos[config].splits or {}) if config in infos else []
    split = "train" if "train" in splits or not splits else splits[0]
    return loading_section(target, config, kinds, split)


def _manifest_rows(body: str) -> dict[tuple[str, str], tuple[int, str]]:
    """The (config, split) -> (clips, hash) rows of a card's manifest table."""
    rows: dict[tuple[str, str], tuple[int, str]] = {}
    if MANIFEST_START in body and MANIFEST_END in body:
        block = body.split(MANIFEST_START, 1)[1].split(MANIFEST_END, 1)[0]
        for line in block.splitlines():
            m = _MANIFEST_ROW.match(line.strip())
            if m and m.group(1) != "config":
                rows[(m.group(1), m.group(2))] = (int(m.group(3)), m.group(4))
    return rows


def _manifest_table(rows: dict[tuple[str, str], tuple[int, str]]) -> str:
    """The card's manifest section: which exact clips each split holds, named by a short hash."""
    if not rows:
        return ""
    lines = [MANIFEST_START, "## Manifest", "",
             "The clip ids of each split are listed in `manifests/<config>.json`. The hash (sha256 of the sorted "
             "ids joined by newlines, first 12 hex digits) names that exact set of clips: quote it with results, "
             "and `avsets compare` shows what two copies share.", "",
             "| config | split | clips | manifest hash |", "| --- | --- | ---: | --- |"]
    for (cfg, split), (n, h) in sorted(rows.items()):
        lines.append(f"| {cfg} | {split} | {n} | `{h}` |")
    lines.append(MANIFEST_END)
    return "\n".join(lines)


def build_card(
    *,
    corpus: str,
    config: str,
    features: Features,
    splits: dict[str, SplitStats],
    existing: str | None = None,
    corpus_card: str | None = None,
    citation: str | None = None,
    description: str | None = None,
    load_target: str | None = None,
    manifest: dict[str, tuple[int, str]] | None = None,
    filters: FilterSummary | None = None,
) -> str:
    """Return the merged README.md text for an export of ``corpus``/``config`` (see module doc).

    ``load_target`` is what the card's loading example passes to ``load_dataset``: the export folder for a
    local card (``push`` puts the repo id there). ``manifest`` (``{split: (clips, hash)}``) adds the manifest
    table; other configs' rows are kept. ``filters`` adds this config's block of the "Filters" section
    (:mod:`card_filters`).
    """
    data, old_body = _parse(existing)
    corpus_data, corpus_body = _parse(corpus_card if corpus_card is not None else load_corpus_card(corpus))
    for key in CORPUS_KEYS:
        if corpus_data.get(key) is not None:
            data[key] = corpus_data[key]
    data["pretty_name"] = data.get("pretty_name") or corpus
    # a split with no exported row has no file: declaring it would make stock `datasets` fail on the glob
    present = {s: st for s, st in splits.items() if st.num_examples > 0}
    MetadataConfigs(
        {config: {"data_files": [{"split": s, "path": f"data/{config}/{s}-*"} for s in present]}}
    ).to_dataset_card_data(data)
    info = DatasetInfo(
        features=features,
        config_name=config,
        splits=SplitDict({s: SplitInfo(name=s, num_bytes=st.num_bytes, num_examples=st.num_examples)
                          for s, st in present.items()}),
        download_size=sum(st.num_bytes for st in splits.values()),
        dataset_size=sum(st.num_bytes for st in splits.values()),
    )
    DatasetInfosDict({config: info}).to_dataset_card_data(data)
    infos = DatasetInfosDict.from_dataset_card_data(data)
    largest = max((sum(sp.num_examples or 0 for sp in (i.splits or {}).values()) for i in infos.values()),
                  default=0)
    data["size_categories"] = [size_category(largest)]

    _media_metadata(data)
    text_source = _strip_generated(corpus_body) or _strip_generated(old_body)
    intro, sections = split_sections(text_source)
    title = f"# {data['pretty_name']}"
    if intro.startswith("# "):
        title, _, intro = intro.partition("\n")
        intro = intro.strip()
    declared = _declared(data)
    blocks = {k: v for k, v in config_blocks(old_body).items() if k in declared and k != config}
    blocks[config] = config_block(config, config_descriptions(corpus_body).get(config), features)
    parts = [render_body(title=title, intro=intro, sections=sections, blocks=blocks,
                         loading=_loading(data, load_target or "."))]
    if description and description.strip() and description.strip() not in text_source:
        parts.append(description.strip())
    if citation and citation.strip() and "## Citation" not in text_source and citation.strip() not in text_source:
        parts.append("## Citation\n\n```bibtex\n" + citation.strip() + "\n```")
    parts.append(_availability(old_body, config, splits))
    fblocks = {k: v for k, v in filters_blocks(old_body).items() if k in declared and k != config}
    if filters is not None and filters.active:
        fblocks[config] = filters_block(config, filters, {s: st.num_examples for s, st in splits.items()},
                                        {s: h for s, (_, h) in (manifest or {}).items()})
    if fblocks:
        parts.append(filters_section(fblocks))
    mrows = {k: v for k, v in _manifest_rows(old_body).items() if k[0] != config}
    mrows.update({(config, s): v for s, v in (manifest or {}).items()})
    if mrows:
        parts.append(_manifest_table(mrows))
    note = _takedowns_note(old_body)
    if note:
        parts.append(note)
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(parts) + "\n"


def merge_cards(base: str | None, update: str) -> str:
    """Merge the card of a new export (``update``) into a card already published (``base``).

    ``update`` wins for its own configs and for the descriptive keys; every config that only ``base``
    declares keeps its ``configs`` entry, ``dataset_info`` and availability rows. Used by ``push`` so that
    pushing a second config never drops the first.
    """
    if not base:
        return update
    data, base_body = _parse(base)
    upd, upd_body = _parse(update)
    upd_configs = MetadataConfigs.from_dataset_card_data(upd)
    upd_infos = DatasetInfosDict.from_dataset_card_data(upd)
    for key, value in upd.to_dict().items():
        if key not in ("configs", "dataset_info", "size_categories"):
            data[key] = value
    upd_configs.to_dataset_card_data(data)
    upd_infos.to_dataset_card_data(data)
    infos = DatasetInfosDict.from_dataset_card_data(data)
    largest = max((sum(sp.num_examples or 0 for sp in (i.splits or {}).values()) for i in infos.values()),
                  default=0)
    data["size_categories"] = [size_category(largest)]
    rows = _avail_rows(base_body)
    new_rows = _avail_rows(upd_body)
    mine = {cfg for cfg, _ in new_rows}
    rows = {k: v for k, v in rows.items() if k[0] not in mine} | new_rows
    declared = _declared(data)
    blocks = {k: v for k, v in (config_blocks(base_body) | config_blocks(upd_body)).items() if k in declared}
    _media_metadata(data)
    body = replace_region(upd_body, CONFIGS_START, CONFIGS_END, configs_section(blocks))
    body = _strip_tables(body).strip() + "\n\n" + _avail_table(rows)
    fblocks = {k: v for k, v in filters_blocks(base_body).items() if k not in mine} | filters_blocks(upd_body)
    fblocks = {k: v for k, v in fblocks.items() if k in declared}
    if fblocks:
        body += "\n\n" + filters_section(fblocks)
    new_m = _manifest_rows(upd_body)
    mine_m = mine | {cfg for cfg, _ in new_m}
    m_rows = {k: v for k, v in _manifest_rows(base_body).items() if k[0] not in mine_m} | new_m
    if m_rows:
        body += "\n\n" + _manifest_table(m_rows)
    note = _takedowns_note(upd_body, base_body)
    if note:
        body += "\n\n" + note
    return f"---\n{data.to_yaml()}\n---\n\n{body}\n"

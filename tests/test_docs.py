"""The repository stands on its own: nothing cites a file outside it, and docs/ agrees with the code.

docs/LABELS.md describes the label spaces of `fbn_keras.taxonomy`, docs/RECORDS.md the record schema of
`fbn_keras.data`, docs/DATABASES.md the codes the builders in `tfrecords_tools` read; each table is
parsed here and compared with the constants it describes.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fbn_keras import data, taxonomy

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# Spelled in pieces so that this file does not match itself.
FORBIDDEN = {
    "a specification outside the repository": re.compile(r"\b" + "SP" + r"EC\b"),
    "an issue number": re.compile(r"(?i)\b" + "iss" + r"ues? ?#?\d+"),
    "an issue": re.compile(r"(?i)\bthe " + "iss" + r"ue\b"),
    "the shared folder": re.compile(r"\.\./" + "shared"),
    "a file outside the repository": re.compile("(DATA_" + "FORMATS|VIDEO_" + "MODELS|OTHER_" + "SYSTEMS|STYLE)" + r"\.md|OTHER_" + "SYSTEMS"),
    "an absolute machine path": re.compile(r"(?<![\w.~])/(" + "work|home|Users|root" + r")/"),
}
#: '§' cites a section of docs/FAITHFULNESS.md only (its own cross-references included).
SECTION_SIGN = "\u00a7"


def tracked_text_files():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split("\n")
    for name in filter(None, names):
        path = ROOT / name
        if path.is_file():
            try:
                yield name, path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue                                            # images and other binary files


def test_nothing_cites_a_file_or_an_issue_outside_the_repository():
    found = []
    for name, text in tracked_text_files():
        for number, line in enumerate(text.splitlines(), 1):
            for what, pattern in FORBIDDEN.items():
                if pattern.search(line):
                    found.append(f"{name}:{number}: {what}: {line.strip()[:120]}")
            if SECTION_SIGN in line and "FAITHFULNESS" not in line and name != "docs/FAITHFULNESS.md":
                found.append(f"{name}:{number}: a section sign not citing docs/FAITHFULNESS.md: {line.strip()[:120]}")
    assert found == [], "\n".join(found)


def test_the_forbidden_patterns_catch_what_they_are_for():
    # Built from pieces, as above: each line is one that the sweep removed from the repository.
    bad = ["(" + "SP" + "EC " + SECTION_SIGN + "4)", "(" + "iss" + "ue 4, Scale)", "the " + "iss" + "ue's targets",
           "`/" + "work/shared/DATA_" + "FORMATS.md`", "data: /" + "root/.cache/fbn_keras", "see VIDEO_" + "MODELS.md D4"]
    for line in bad:
        assert any(p.search(line) for p in FORBIDDEN.values()), line
    for line in ["a TensorSpec", "~/.cache/fbn_keras", "--data /data/fbn", "docs/FAITHFULNESS.md",
                 "from fbn_keras.video_models import VIDEO_" + "MODELS"]:
        assert not any(p.search(line) for p in FORBIDDEN.values()), line


# === Links ===

@pytest.mark.parametrize("page", ["README.md", "tfrecords_tools/README.md"])
def test_the_readmes_point_at_the_docs(page):
    text = (ROOT / page).read_text()
    for doc in ("LABELS.md", "RECORDS.md", "DATABASES.md"):
        assert f"docs/{doc}" in text, (page, doc)


def test_relative_links_in_the_docs_resolve():
    pages = [ROOT / "README.md", ROOT / "tfrecords_tools" / "README.md", *sorted(DOCS.glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if not re.match(r"[a-z]+:", target) and not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} → {target}")
    assert broken == []


# === docs/LABELS.md agrees with fbn_keras.taxonomy ===

def table_after(text: str, heading: str) -> list[list[str]]:
    """The rows (cells stripped) of the first Markdown table after the heading that starts with `heading`."""
    start = next(i for i, line in enumerate(text.splitlines()) if line.startswith("#") and heading in line)
    rows, lines = [], text.splitlines()[start + 1:]
    for line in lines:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):
                rows.append(cells)
        elif rows:
            break
    return rows[1:]                                                    # without the header row


def numbers(cell: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", cell))


def weights(cell: str) -> dict[int, float]:
    return {int(au): float(w) for au, w in re.findall(r"(\d+) \(([\d.]+)\)", cell)}


LABELS = (DOCS / "LABELS.md").read_text()


def test_labels_expressions_and_aus():
    assert [(int(i), e) for i, e in table_after(LABELS, "## Expressions")] == list(enumerate(taxonomy.EXPRESSIONS))
    rows = table_after(LABELS, "## Action units")
    assert [(int(r[0]), r[1]) for r in rows] == [(i, f"AU{au}") for i, au in enumerate(taxonomy.AUS)]
    assert [r[2] for r in rows] == [taxonomy.AU_NAMES[au] for au in taxonomy.AUS]
    header = ["Aff-Wild2", "DISFA", "BP4D", "BP4D+", "EmotioNet"]
    names = ["affwild2", "disfa", "bp4d", "bp4dplus", "emotionet"]
    for k, name in enumerate(names):
        marked = tuple(au for au, r in zip(taxonomy.AUS, rows) if r[3 + k] == "✓")
        assert marked == tuple(sorted(taxonomy.DATABASES[name].aus)), header[k]
    assert "valence first" in LABELS and taxonomy.VA_NAMES == ("valence", "arousal")


def test_labels_relation_tables():
    cognitive = {r[0]: (numbers(r[1]), weights(r[2])) for r in table_after(LABELS, "## Relating")}
    assert cognitive == {e: (row.prototypical, dict(row.observational))
                         for e, row in taxonomy.COGNITIVE_TABLE.items()}
    text_after_cognitive = LABELS[LABELS.index("`--relation affwild2`"):]
    empirical = {r[0]: weights(r[1]) for r in table_after("#\n" + text_after_cognitive, "#")}
    assert empirical == {e: dict(row.observational) for e, row in taxonomy.AFFWILD2_TABLE.items()}


def test_labels_compound_vocabulary():
    rows = table_after(LABELS, "## Compound")
    assert len(rows) == taxonomy.NUM_COMPOUNDS
    for i, (row, c) in enumerate(zip(rows, taxonomy.COMPOUNDS)):
        assert (int(row[0]), row[1], tuple(row[2].split(", "))) == (i, c.name, c.emotions)
        assert (numbers(row[3]), numbers(row[4])) == (c.prototypical, c.observational)
        rafdb = taxonomy.RAFDB_COMPOUND_SUBSET.index(i) + 1 if i in taxonomy.RAFDB_COMPOUND_SUBSET else None
        assert (int(row[5]) if row[5] else None) == rafdb, c.name
        assert (row[6] == "✓") == (i in taxonomy.EMOTIONET_COMPOUND_SUBSET), c.name


def test_labels_databases():
    rows = {r[0]: r for r in table_after(LABELS, "## Which labels")}
    assert sorted(rows) == sorted(taxonomy.DATABASES)
    for name, db in taxonomy.DATABASES.items():
        assert tuple(rows[name][1].split(", ")) == db.tasks, name
        assert numbers(rows[name][2]) == db.aus, name


# === docs/RECORDS.md agrees with fbn_keras.data ===

def test_records_document_every_feature_key():
    text = (DOCS / "RECORDS.md").read_text()
    keys = {v for k, v in vars(data).items() if k.isupper() and isinstance(v, str)
            and re.fullmatch(r"(image|label|mask|feature)/\w+", v)}
    assert set(data.FEATURES) <= keys
    missing = sorted(k for k in keys if f"`{k}`" not in text)
    assert missing == []
    assert "<database>-<split>-NNNNN-of-MMMMM.tfrecord" in text and "manifest.json" in text


# === docs/DATABASES.md agrees with the builders' code tables ===

def codes(names, start=0) -> str:
    return ", ".join(f"{i} {n}" for i, n in enumerate(names, start))


def test_databases_codes_match_the_builders():
    from tfrecords_tools import afew, affectnet, affwild2, bp4d, disfa, emotionet, rafdb

    text = " ".join((DOCS / "DATABASES.md").read_text().split())          # one line: tables wrap freely
    assert codes(affwild2.AFFWILD2_EXPR) in text
    assert codes(affectnet.AFFECTNET_EXPRESSIONS) in text
    assert all(f"{code} ({name})" in text for code, name in affectnet.NON_CLASS_CODES.items())
    assert codes(rafdb.RAFDB_BASIC, start=1) in text
    assert ", ".join(emotionet.EMOTIONET_EMOTIONS) in text
    assert ", ".join(map(str, emotionet.CHALLENGE_AUS)) in text
    assert ", ".join(map(str, disfa.AUS)) in text and f"at least {disfa.OCCURRENCE_THRESHOLD}" in text
    assert f"`{bp4d.NOT_CODED}` (not coded)" in text
    assert f"BP4D {bp4d.DEFAULT_OFFSET['bp4d']}, BP4D+ −{-bp4d.DEFAULT_OFFSET['bp4dplus']}" in text
    for folder, name in afew.AFEW_CLASSES.items():
        assert f"{folder.capitalize()} → {name}" in text
    assert str(affectnet.NO_VA).rstrip("0").rstrip(".") in text and str(int(affwild2.VA_INVALID)) in text

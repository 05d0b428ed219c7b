"""``sanyu eval``: WER/CER/DER and language-ID accuracy on clips laid out like ../shared/eval."""

from __future__ import annotations

import click

from sanyu.api import Transcriber
from sanyu.cli.options import build_options, csv, log_option, model_options, option, transcribe_options
from sanyu.evaluation.dataset import load_clips


@click.command("eval")
@click.argument("manifest_dir", type=click.Path(exists=True, file_okay=False))
@option("--baseline/--no-baseline", default=True, show_default=True,
        help="Also run plain faster-whisper on the same model, side by side.")
@option("--languages", default="en,zh,yue", show_default=True,
        help="Folders to score (en, zh, yue, multi).")
@option("--language-id/--no-language-id", default=True, show_default=True,
        help="Score per-segment language tags on joined yue+zh+en clips.")
@option("--joined/--no-joined", default=True, show_default=True,
        help="With --folds: also score each fold's clips of a language joined into one long "
             "recording (windows packed as in a meeting).")
@option("--folds", "folds_file", type=click.Path(exists=True, dir_okay=False), default=None,
        help="A two-fold split (TSV: file, fold, like ../shared/eval/FOLDS.tsv): report each "
             "fold with the settings fit on the other (the dialect probe), never on its own "
             "clips, pooled per language and per source group.")
@model_options
@transcribe_options
@log_option
def eval_command(manifest_dir, baseline, languages, language_id, joined, folds_file, **kwargs):
    """Score transcripts of MANIFEST_DIR (laid out like ../shared/eval): WER (en), CER (zh, yue),
    language-ID accuracy and, with --diarize, DER (0.25 s and 0 s collars, overlap scored, with
    missed speech, false alarm and confusion) where an RTTM exists and cpWER where an STM does."""
    # The scoring libraries (jiwer, pyannote.metrics, the normalisers: the `eval` extra) load
    # only for this command.
    from sanyu.evaluation.report import print_fold_report, print_report
    from sanyu.evaluation.runner import evaluate_clips, evaluate_language_id
    from sanyu.evaluation.twofold import evaluate_folds

    models, options = build_options(kwargs)
    transcriber = Transcriber(models)
    progress = lambda clip: click.echo(f"  scored {clip.name}", err=True)  # noqa: E731
    if folds_file:
        print_fold_report(evaluate_folds(
            manifest_dir, folds_file, transcriber, options, baseline, language_id, csv(languages),
            progress=progress, joined=joined,
        ))
        return
    clips = load_clips(manifest_dir, csv(languages))
    if not clips:
        raise click.UsageError(f"no clips found under {manifest_dir} for {languages}")
    results = evaluate_clips(clips, transcriber, options, baseline, progress=progress)
    language_result = evaluate_language_id(manifest_dir, transcriber, options) if language_id else None
    print_report(results, language_result)

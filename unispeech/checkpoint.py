"""Hugging Face checkpoint folders: find them (bundled, local or hub), read every weight layout, map keys,
load into a CTC or pretraining model (strictly, or leniently for fine-tuning's start), and save."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from .audio import AudioSettings
from .beam import PHONE_LM_FILE
from .config import ModelConfig
from .files import atomic_write
from .model import (
    CTCModel,
    UniSpeechPretrainModel,
    build_model,
    parameter_dtypes,
    set_precision,
)
from .precision import Precision
from .vocab import Vocabulary

REAL_MODEL = "microsoft/unispeech-1350-en-17h-ky-ft-1h"
DEFAULT_MODEL_DIR = Path(__file__).parent / "assets" / "default-model"
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
HUB_PATTERNS = ["*.json", "*.safetensors", "*.md", "*.bin", PHONE_LM_FILE]
BACKBONE_PREFIXES = {"unispeech": "unispeech.", "wav2vec2": "wav2vec2."}
CTC_HEADS = ("lm_head.",)
PRETRAINING_HEADS = ("quantizer.", "project_q.", "project_hid.", "ctc_proj.")
MASK_EMBED = "backbone.masker.masked_spec_embed"
POS_CONV = "backbone.encoder.pos_conv_embed.conv."
# transformers' names -> ours, after the backbone prefix: the two spellings of the positional conv's weight
# norm, and the mask embedding (a parameter of the backbone there, of its masker here).
KEY_MAP = {
    "backbone.masked_spec_embed": MASK_EMBED,
    POS_CONV + "parametrizations.weight.original0": POS_CONV + "weight_g",
    POS_CONV + "parametrizations.weight.original1": POS_CONV + "weight_v",
}


TO_HF_KEY_MAP = {ours: theirs for theirs, ours in KEY_MAP.items()}


def default_model_folder() -> Path:
    """The bundled demo model's folder; says on stderr that it is the demo model."""
    if not (DEFAULT_MODEL_DIR / "config.json").is_file():
        raise ValueError(
            f"no default model is bundled; pass a model, e.g. {REAL_MODEL} "
            "(needs the Hugging Face hub) or /path/to/downloaded/folder"
        )
    print(
        f"unispeech: using the bundled demo model (small; synthetic voices and little real speech); for real "
        f"recordings use --model {REAL_MODEL}",
        file=sys.stderr,
    )
    return DEFAULT_MODEL_DIR


def resolve_folder(name_or_path: str | os.PathLike | None) -> Path:
    """None or "default": the bundled model; a local folder as is; otherwise a hub id, downloaded (or taken
    from the cache) with huggingface_hub."""
    if name_or_path is None or str(name_or_path) == "default":
        return default_model_folder()
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise ValueError(f"{name_or_path}: not a folder (pass the model folder holding config.json)")
    text = str(name_or_path)
    if text.startswith((".", "/", "~")) or text.count("/") != 1:
        raise ValueError(f"{name_or_path}: no such model folder, and not a hub id of the form 'owner/name'")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=text, allow_patterns=HUB_PATTERNS))
    except Exception as e:  # offline, unknown repo, gated: every failure gets the same advice
        raise RuntimeError(
            f"could not fetch {text!r} from the Hugging Face hub ({type(e).__name__}: {str(e).splitlines()[0][:200]}). "
            f"If you have the files, pass the local folder instead: --model /path/to/folder "
            f"(download it elsewhere with: huggingface-cli download {text} --local-dir FOLDER)"
        ) from e


def weights_file(folder: Path) -> Path | None:
    """The file that holds (or indexes) a folder's weights, in transformers' order of preference."""
    return next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), None)


def read_state_dict(
    folder: Path, dtype: torch.dtype | Callable[[str], torch.dtype | None] | None = None
) -> dict[str, torch.Tensor]:
    """All tensors of a folder's weights: safetensors first, then pytorch_model.bin; sharded or not.

    With `dtype` (a type, or a function of the key), floating tensors are converted one at a time as they
    are read, so memory never holds the checkpoint in two precisions at once.
    """
    path = weights_file(folder)
    if path is None:
        raise ValueError(f"{folder}: no weights (expected one of {', '.join(WEIGHT_FILES)})")
    files = [path]
    if path.name.endswith(".index.json"):
        try:
            index = json.loads(path.read_text(encoding="utf-8"))
            files = [folder / f for f in sorted(set(index["weight_map"].values()))]
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"{path}: not a valid weight index ({type(e).__name__}: {e})") from e
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(_read_weight_file(f, dtype))
    return state


def _read_weight_file(path: Path, dtype) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ValueError(f"{path}: weight shard listed in the index is missing")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{path}: permission denied (this user may not read the weights)")
    kept = []  # keys whose tensors already had their final type

    def convert(key: str, t: torch.Tensor) -> torch.Tensor:
        target = dtype(key) if callable(dtype) else dtype
        if target is None or not t.is_floating_point() or t.dtype == target:
            kept.append(key)
            return t
        return t.to(target)

    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:  # memory-mapped: tensors are read one by one
                state = {k: convert(k, f.get_tensor(k)) for k in f.keys()}
        else:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            state = {k: convert(k, v) for k, v in state.items()}
    except Exception as e:
        raise ValueError(f"{path}: cannot read weights ({type(e).__name__}: {e})") from e
    if len(kept) < len(state):
        # A tensor that kept its type may still point into the memory-mapped file, which would keep all
        # of the file's pages resident (and counted in RSS) beside the converted copies: copy those too.
        state.update({k: state[k].clone() for k in kept})
    return state


def from_hf_key(key: str, model_type: str) -> str:
    prefix = BACKBONE_PREFIXES[model_type]
    if key.startswith(prefix):
        key = "backbone." + key[len(prefix) :]
    return KEY_MAP.get(key, key)


def to_hf_key(key: str, model_type: str) -> str:
    key = TO_HF_KEY_MAP.get(key, key)
    return BACKBONE_PREFIXES[model_type] + key[len("backbone.") :] if key.startswith("backbone.") else key


def from_hf_keys(state: dict[str, torch.Tensor], model_type: str) -> dict[str, torch.Tensor]:
    """transformers key names -> ours; a positional conv saved with its weight norm removed is split again."""
    out = {from_hf_key(k, model_type): v for k, v in state.items()}
    if POS_CONV + "weight" in out:
        v = out.pop(POS_CONV + "weight")
        out[POS_CONV + "weight_v"], out[POS_CONV + "weight_g"] = v, v.norm(dim=(0, 1), keepdim=True)
    return out


def to_hf_keys(state: dict[str, torch.Tensor], model_type: str) -> dict[str, torch.Tensor]:
    return {to_hf_key(k, model_type): v.detach().contiguous() for k, v in state.items()}


def load_weights(
    model: CTCModel | UniSpeechPretrainModel,
    folder: Path,
    *,
    strict: bool = True,
    dtypes: dict[str, torch.dtype] | None = None,
    assign: bool = False,
    carry_head: bool = False,
) -> list[str]:
    """Load a folder's weights (any layout, either model kind's folder) into `model`.

    Strict: every tensor of the model must be in the folder. Lenient (the start of fine-tuning): the CTC
    head may be missing or of another size and is then left as initialised; the body must still be
    complete. Heads of the other model kind are ignored, except that `carry_head` (the caller knows both
    heads label the same vocabulary) takes the other kind's phonetic CTC head (lm_head <-> ctc_proj) where
    the folder lacks this kind's. Returns notes on what was left initialised."""
    model_type = model.config.model_type
    convert = (lambda key: dtypes.get(from_hf_key(key, model_type))) if dtypes else None
    state = from_hf_keys(read_state_dict(folder, convert), model_type)
    own = model.state_dict()
    if carry_head:
        mine, theirs = ("lm_head.", "ctc_proj.") if isinstance(model, CTCModel) else ("ctc_proj.", "lm_head.")
        if not any(k.startswith(mine) for k in state):
            state.update({mine + k[len(theirs) :]: v for k, v in state.items() if k.startswith(theirs)})
    foreign = PRETRAINING_HEADS if isinstance(model, CTCModel) else CTC_HEADS
    state = {k: v for k, v in state.items() if not k.startswith(foreign)}
    if isinstance(model, CTCModel) and "lm_head.weight" not in state and strict:
        raise ValueError(
            f"{folder}: the weights have no CTC head (lm_head); this looks like a pretraining "
            "checkpoint: fine-tune it first (unispeech finetune --init ...)"
        )
    notes = []
    if not strict:  # the CTC head may be re-made; a pretraining model's quantizer is left as initialised
        head = "lm_head." if isinstance(model, CTCModel) else "ctc_proj."
        resized = [k for k in own if k.startswith(head) and k in state and state[k].shape != own[k].shape]
        absent = [k for k in own if k.startswith(head) and k not in state]
        if resized:
            notes.append(
                f"the checkpoint's head has {tuple(state[resized[0]].shape)} weights where this model's "
                f"vocabulary needs {tuple(own[resized[0]].shape)}: the head is re-initialised"
            )
        elif absent:
            notes.append(
                "the checkpoint has no CTC head (a pretraining checkpoint?): the head starts from random weights"
            )
        if resized or absent:
            state = {k: v for k, v in state.items() if not k.startswith(head)}
    if MASK_EMBED in own and MASK_EMBED not in state:
        state[MASK_EMBED] = torch.rand(own[MASK_EMBED].shape)  # used only in training: transformers draws it too
    _check_keys(own, state, folder, strict)
    if dtypes:
        state = {k: v.to(dtypes.get(k, v.dtype)) for k, v in state.items()}
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False, assign=assign)
    return notes


def _check_keys(own: dict, state: dict, folder: Path, strict: bool) -> None:
    missing = sorted(k for k in set(own) - set(state) if strict or not k.startswith(CTC_HEADS + PRETRAINING_HEADS))
    unexpected = sorted(set(state) - set(own) - {MASK_EMBED})
    if missing or unexpected:
        detail = "; ".join(
            part
            for part in (
                f"missing {len(missing)}: {', '.join(missing[:5])}" if missing else "",
                f"unexpected {len(unexpected)}: {', '.join(unexpected[:5])}" if unexpected else "",
            )
            if part
        )
        raise ValueError(f"{folder}: weights do not match config.json ({detail})")
    for key, value in state.items():
        if key in own and own[key].shape != value.shape:
            raise ValueError(
                f"{folder}: {key} has shape {tuple(value.shape)}, config.json implies {tuple(own[key].shape)}"
            )


def read_config(folder: Path) -> ModelConfig:
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ValueError(f"{folder}: no config.json (is this a model folder?)")
    return ModelConfig.from_json(config_path)


def load_folder(folder: Path, precision: Precision = Precision()) -> tuple[CTCModel, Vocabulary, AudioSettings]:
    """A complete CTC checkpoint folder -> model in eval mode in `precision`, its vocabulary and audio
    settings. The weights are read straight into their final types. A UniSpeech pretraining folder with its
    phonetic CTC head's vocab.json loads as that head's recognizer (the paper's CTC-transfer)."""
    config, vocab, audio = read_metadata(folder)
    with torch.device("meta"):
        model = build_model(config)
    dtypes = parameter_dtypes(model, precision)
    load_weights(model, folder, dtypes=dtypes, assign=True, carry_head=is_pretraining(config))
    return set_precision(model, precision).eval(), vocab, audio


def is_pretraining(config: ModelConfig) -> bool:
    return any(name.endswith("ForPreTraining") for name in config.extra.get("architectures", []))


def read_metadata(folder: Path) -> tuple[ModelConfig, Vocabulary, AudioSettings]:
    """A CTC model folder's config, vocabulary and audio settings, without its weights (what
    `metadata_files` writes); for a pretraining folder, those of its phonetic CTC head."""
    config = read_config(folder)
    if is_pretraining(config):
        if not (folder / "vocab.json").is_file():
            raise ValueError(
                f"{folder}: a pretraining checkpoint without the vocab.json of its CTC head: fine-tune it first "
                "(unispeech finetune --init ...)"
            )
        config = dataclasses.replace(config, vocab_size=config.num_ctc_classes)
    vocab = Vocabulary.from_folder(folder, blank_id=config.pad_token_id, head_size=config.vocab_size)
    return config, vocab, AudioSettings.from_folder(folder)


def load_pretraining_folder(folder: str | Path) -> UniSpeechPretrainModel:
    """A folder in transformers' UniSpeechForPreTraining layout (ours or transformers') -> the model."""
    folder = Path(folder)
    model = UniSpeechPretrainModel(read_config(folder))
    try:
        load_weights(model, folder)
    except ValueError as e:
        raise ValueError(f"{folder}: not a pretraining checkpoint ({e})") from e
    return model


def save_folder(
    folder: str | os.PathLike,
    model: CTCModel | UniSpeechPretrainModel,
    vocab: Vocabulary | None,
    audio: AudioSettings = AudioSettings(),
    storage: torch.dtype = torch.float32,
) -> Path:
    """Write a folder that transformers (AutoModelForCTC / UniSpeechForPreTraining, AutoProcessor) and we read.

    `storage=torch.float16` stores the weights in half the bytes (the bundled model: the package's size);
    loading converts them back exactly, and config.json tells transformers to compute in float32 anyway.
    Every file is written to a temporary name and renamed into place, so an interrupted save never
    leaves a half-written file under the final name.
    """
    folder = Path(folder)
    texts = metadata_files(model.config, vocab, audio, pretraining=not isinstance(model, CTCModel))
    tensors = to_hf_keys(stored_tensors(model, storage), model.config.model_type)
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "model.safetensors", lambda p: save_file(tensors, p, metadata={"format": "pt"}))
    for name, text in texts.items():
        atomic_write(folder / name, text + "\n")
    return folder


def stored_tensors(model: torch.nn.Module, storage: torch.dtype) -> dict[str, torch.Tensor]:
    """The model's tensors, floating ones in the `storage` type; refused where a value does not fit it."""
    out = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu()
        if not value.is_floating_point():
            out[key] = value
            continue
        value = value.float()
        if storage != torch.float32 and value.numel():
            largest = value.abs().max()
            if largest > torch.finfo(storage).max:
                raise ValueError(f"{key}: values up to {largest:.3g} do not fit {storage}; store float32")
        out[key] = value.to(storage)
    return out


def metadata_files(
    config: ModelConfig, vocab: Vocabulary | None, audio: AudioSettings, pretraining: bool = False
) -> dict[str, str]:
    """Everything of a model folder but the weights: config.json, preprocessor_config.json, the vocabulary
    (for a pretraining model: the labels of ctc_proj), by file name."""
    hf = config.to_hf_dict()
    hf.pop("torch_dtype", None)  # the legacy name of the next key
    hf["dtype"] = "float32"  # transformers 5 would otherwise compute in the stored type (float16 storage)
    if pretraining:
        hf["architectures"] = ["UniSpeechForPreTraining"]
        if vocab is not None:  # the blank of ctc_proj's labels: what loading it as a recognizer needs
            hf["pad_token_id"] = vocab.blank_id
    else:
        hf.update(
            pad_token_id=vocab.blank_id,
            vocab_size=len(vocab),
            architectures=["UniSpeechForCTC" if config.model_type == "unispeech" else "Wav2Vec2ForCTC"],
        )
    return {
        "config.json": json.dumps(hf, indent=2, ensure_ascii=False),
        "preprocessor_config.json": audio.to_json(),
        **(vocab.files() if vocab is not None else {}),
    }

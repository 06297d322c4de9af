"""The training subcommands, `unispeech finetune` and `unispeech pretrain`: their flags and thin commands."""

from __future__ import annotations

import argparse

from .recipe import add_train_options, natural_int, train_overrides


def cmd_finetune(args: argparse.Namespace) -> int:
    from .finetune import finetune, load_recipe

    recipe = load_recipe(args.recipe, **train_overrides(args), freeze_encoder_updates=args.freeze_encoder_updates)
    out = finetune(
        args.init,
        args.train,
        args.out,
        valid_data=args.valid,
        recipe=recipe,
        resume=args.resume,
        split=args.split,
        valid_split=args.valid_split,
        audio_dir=args.audio_dir,
        device=args.device,
    )
    print(f"fine-tuned model: {out} (load it with --model {out})")
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from .pretrain import pretrain, read_pretrain_recipe

    recipe = read_pretrain_recipe(
        args.recipe,
        **train_overrides(args),
        replace_prob=args.replace_prob,
        alpha=args.alpha,
        mask_prob=args.mask_prob,
        negatives=args.negatives,
    )
    out = pretrain(
        args.init,
        args.out,
        labeled=args.labeled,
        unlabeled=args.unlabeled,
        recipe=recipe,
        resume=args.resume,
        language=args.language,
        valid_data=args.valid,
        device=args.device,
    )
    usable = " or recognize with its CTC head as it is: unispeech transcribe --model {out} ..."
    usable = usable.format(out=out) if (out / "vocab.json").is_file() else ""
    print(f"pretrained model: {out} (fine-tune it with: unispeech finetune --init {out} ...;{usable})")
    return 0


def add_finetune(sub) -> None:
    from .recipe import TrainOptions

    p = sub.add_parser(
        "finetune",
        help="CTC fine-tuning with the UniSpeech recipe",
        description="Fine-tune a UniSpeech/wav2vec2 checkpoint (or a config.json, from scratch) "
        "on phone-labelled speech. Defaults are the paper's 1-hour recipe; the "
        "best model by validation PER is written to --out as a Hugging Face folder. "
        "Multi-process: torchrun --nproc_per_node N -m unispeech finetune ...",
    )
    p.add_argument(
        "--init",
        required=True,
        help="checkpoint folder (any head, or a pretraining checkpoint) or a config.json for random initialisation",
    )
    p.add_argument("--train", required=True, help="training data (Common Voice folder, manifest or split files)")
    p.add_argument("--valid", help="validation data, scored by PER every --valid-every updates")
    p.add_argument("--out", required=True, help="output folder (model, checkpoints/, train_log.jsonl, training.png)")
    p.add_argument("--split", default="train", help="Common Voice split for --train (default: train)")
    p.add_argument("--valid-split", default="dev", help="Common Voice split for --valid (default: dev)")
    p.add_argument("--audio-dir", help="where the clips are, for split files / manifests (default: beside the data)")
    p.add_argument("--freeze-encoder-updates", type=natural_int, help="updates that train only the head (recipe: 2000)")
    add_train_options(p, TrainOptions())
    p.set_defaults(func=cmd_finetune)


def add_pretrain(sub) -> None:
    from .pretrain import PretrainRecipe

    p = sub.add_parser(
        "pretrain",
        help="UniSpeech multi-task pretraining (CTC + contrastive + replacement)",
        description="Stage 1: --labeled (phones or text, G2P'd with --language) and optionally "
        "--unlabeled audio: alpha*CTC + (1-alpha)*(contrastive + 0.1*diversity) with "
        "replace_prob r. Stage 2 ('+' models): --init a stage-1 output, --unlabeled "
        "only, --mask-prob 0.65. Writes transformers' UniSpeechForPreTraining layout.",
    )
    p.add_argument(
        "--init",
        required=True,
        help="a config.json (random initialisation), a pretraining checkpoint, or a fine-tuned CTC model (its body "
        "and CTC head go on; the quantizer starts new)",
    )
    p.add_argument("--labeled", help="labelled data (phones, or text for G2P)")
    p.add_argument("--unlabeled", help="unlabelled audio (a manifest or Common Voice folder; labels ignored)")
    p.add_argument("--valid", help="held-out audio: contrastive loss, accuracy and perplexity every --valid-every")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--language", default="ky", help="G2P language for labelled text (default: ky)")
    p.add_argument("--replace-prob", type=float, help="r: 0.5 in the paper; 0 for the r=0 ablation")
    p.add_argument("--alpha", type=float, help="CTC weight (default 0.5); 1 = CTC-only transfer")
    p.add_argument("--mask-prob", type=float, help="span-mask probability (0.5 stage 1, 0.65 stage 2)")
    p.add_argument(
        "--negatives",
        choices=("auto", "all", "masked"),
        help="negatives from all frames or masked frames only (default auto: all with --labeled, as released)",
    )
    add_train_options(p, PretrainRecipe().train)
    p.add_argument("--config", dest="recipe", help=argparse.SUPPRESS)  # the old name of --recipe
    p.set_defaults(func=cmd_pretrain)

"""The S3TVR stack's models at their published sizes, with random weights, for benchmarks/bench_stack.py
and the GPU run (benchmarks/gpu/gpu_run.py); the tests' tiny models use its checkpoint formats.

Speed and memory depend on a model's architecture, sizes, precision and the number of tokens it
generates, not on its weights' values. Each builder here makes the real class at the published
configuration and saves it the way the real checkpoint comes (a .nemo file, a transformers
folder, an XTTS model.pth + config.json + vocab.json), so the backends load it through the users'
own code. ``count_params`` builds on PyTorch's meta device: the architecture without its memory.

Sources of the configurations:
- Parakeet CTC 1.1B / 0.6B: FastConformer, d_model 1024, 8 heads, feed-forward 4x, conv kernel 9,
  8x depthwise-striding subsampling with 256 channels, 80 mels, 1024 BPE tokens; 42 layers (1.1B)
  and 24 (0.6B). huggingface.co/nvidia/parakeet-ctc-1.1b and -0.6b model cards; the layer
  counts also in huggingface.co/cstr/parakeet-ctc-1.1b-GGUF ("42 layers (vs 24 in 0.6b),
  d_model=1024, 8 heads") and transformers' ParakeetCTC config (hidden 1024, intermediate
  4096, 42 layers, subsampling 8 with 256 channels).
- stt_es_fastconformer_hybrid_large_pc: FastConformer-Hybrid Large, 17 layers, d_model 512,
  8 heads, RNN-T prediction network and joint of 640, CTC head, 1024 tokens (its model card:
  "around 114M parameters"; NeMo's fastconformer_hybrid_transducer_ctc_bpe.yaml sizes).
- NLLB-200 distilled 1.3B / 600M: huggingface.co/facebook/nllb-200-distilled-1.3B and -600M
  config.json: vocab 256206, d_model 1024, 16 heads, 24+24 layers with ffn 8192 (1.3B),
  12+12 with ffn 4096 (600M), shared scaled embeddings.
- XTTS v2 (v2.0.3): coqui-tts's XttsArgs with the v2 values of huggingface.co/coqui/XTTS-v2
  config.json: GPT 30 layers x 1024 channels x 16 heads, 6681 text tokens, 1026 audio tokens
  (start 1024, stop 1025), perceiver resampler, HiFi-GAN decoder from 1024-dim latents to 24 kHz;
  conditioning 30 s in 4 s chunks (AstraMindAI/xtts2-gpt's port of the same config: cond_len 30,
  cond_chunk_len 4).
- Whisper base / small / large-v3-turbo: huggingface.co/openai/whisper-base, -small and
  -large-v3-turbo config.json: d_model 512 / 768 / 1280, 8 / 12 / 20 heads, ffn 4x, 6+6 / 12+12 /
  32+4 layers, 80 / 80 / 128 mel bins, vocab 51865 / 51865 / 51866 (large-v3 added a language);
  converted to CTranslate2 int8 as faster-whisper runs them (benchmarks/bench_whisper_sizes.py).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The FLORES text the tokenizers train on: the shared data's ($S3TVR_DATA, else ../shared/data beside the
# checkout; benchmarks/README.md); S3TVR_FLORES where it is elsewhere (the GPU machine, where
# benchmarks/gpu/gpu_run.py points it at the kit's copy).
FLORES = Path(os.environ.get("S3TVR_FLORES")
              or Path(os.environ.get("S3TVR_DATA") or ROOT.parent / "shared" / "data") / "text" / "flores200_devtest")

# Published sizes: the model cards' figures; NLLB's from the Hub's safetensors parameter counts
# ("1.37B params", "615M params"). Where the card rounds ("1.1B") or gives none, the float32
# checkpoint's size / 4 bytes: parakeet-ctc-1.1b.nemo is 4.25 GB (huggingface.co/nvidia/
# parakeet-ctc-1.1b/tree/c87e16293e62b96640c77da4c6dd67cc9585e994); XTTS v2's model.pth is 1.87 GB
# (huggingface.co/coqui/XTTS-v2/blob/8b3db4399dee942f7a5ea9abe08f8dce0993b13f/model.pth, "Update
# to v2.0.3").
PUBLISHED = {
    "parakeet-ctc-1.1b": 4.25e9 / 4,
    "parakeet-ctc-0.6b": 0.6e9,
    "fastconformer-es": 114e6,
    "nllb-1.3b": 1.37e9,
    "nllb-600m": 615e6,
    "xtts-v2": 1.87e9 / 4,
}
KINDS = {"parakeet-ctc-1.1b": "asr", "parakeet-ctc-0.6b": "asr", "fastconformer-es": "asr",
         "nllb-1.3b": "mt", "nllb-600m": "mt", "xtts-v2": "tts"}


# --- NeMo ----------------------------------------------------------------------------------------

def _fastconformer(layers: int, d_model: int) -> dict:
    return {"_target_": "nemo.collections.asr.modules.ConformerEncoder", "feat_in": 80, "feat_out": -1,
            "n_layers": layers, "d_model": d_model, "subsampling": "dw_striding", "subsampling_factor": 8,
            "subsampling_conv_channels": 256, "causal_downsampling": False, "ff_expansion_factor": 4,
            "self_attention_model": "rel_pos", "n_heads": 8, "att_context_size": [-1, -1], "xscaling": True,
            "untie_biases": True, "pos_emb_max_len": 5000, "conv_kernel_size": 9, "conv_norm_type": "batch_norm",
            "dropout": 0.1, "dropout_pre_encoder": 0.1, "dropout_emb": 0.0, "dropout_att": 0.1}


def _ctc_decoder(d_model: int, vocab: int) -> dict:
    return {"_target_": "nemo.collections.asr.modules.ConvASRDecoder", "feat_in": d_model, "num_classes": vocab,
            "vocabulary": []}


def nemo_config(name: str, tokenizer_dir: str = "", vocab: int = 1024) -> dict:
    """The model config of a NeMo checkpoint (``model_config.yaml`` inside the .nemo)."""
    common = {
        "sample_rate": 16000,
        "tokenizer": {"dir": tokenizer_dir, "type": "bpe"},
        "preprocessor": {"_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
                         "sample_rate": 16000, "normalize": "per_feature", "window_size": 0.025, "window_stride": 0.01,
                         "window": "hann", "features": 80, "n_fft": 512, "log": True, "dither": 0.0, "pad_to": 0},
        "validation_ds": {"manifest_filepath": None, "sample_rate": 16000, "batch_size": 1, "shuffle": False},
    }
    if name.startswith("parakeet-ctc"):
        layers = 42 if name.endswith("1.1b") else 24
        return {**common, "encoder": _fastconformer(layers, 1024), "decoder": _ctc_decoder(1024, vocab)}
    if name == "fastconformer-es":
        return {**common, "encoder": _fastconformer(17, 512),
                "model_defaults": {"enc_hidden": 512, "pred_hidden": 640, "joint_hidden": 640},
                "decoder": {"_target_": "nemo.collections.asr.modules.RNNTDecoder", "normalization_mode": None,
                            "random_state_sampling": False, "blank_as_pad": True, "vocab_size": vocab,
                            "prednet": {"pred_hidden": 640, "pred_rnn_layers": 1}},
                "joint": {"_target_": "nemo.collections.asr.modules.RNNTJoint", "log_softmax": None,
                          "preserve_memory": False, "fuse_loss_wer": False, "num_classes": vocab,
                          "jointnet": {"joint_hidden": 640, "activation": "relu", "dropout": 0.2,
                                       "encoder_hidden": 512, "pred_hidden": 640}},
                "decoding": {"strategy": "greedy_batch", "greedy": {"max_symbols": 10}},
                "aux_ctc": {"ctc_loss_weight": 0.3, "decoder": _ctc_decoder(512, vocab), "decoding": {"strategy": "greedy"}},
                "loss": {"loss_name": "default"}}
    raise KeyError(name)


def nemo_modules(name: str, layers: int | None = None, vocab: int = 1024) -> list:
    """The modules that hold a NeMo model's parameters (encoder, decoders, joint), built from its
    config with ``layers`` encoder layers: what ``count_params`` counts without a tokenizer."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = nemo_config(name, vocab=vocab)
    if layers is not None:
        cfg["encoder"]["n_layers"] = layers
    parts = [cfg["encoder"], cfg["decoder"]]
    if "joint" in cfg:
        parts += [cfg["joint"], cfg["aux_ctc"]["decoder"]]
    return [instantiate(OmegaConf.create({k: v for k, v in part.items() if k != "vocabulary"})) for part in parts]


def train_tokenizer(folder: Path, lang: str, vocab: int = 1024, lower: bool = False) -> Path:
    """A sentencepiece BPE tokenizer of the real vocabulary size, trained on FLORES text (the real
    one's pieces differ; the model's sizes do not)."""
    import sentencepiece as spm

    folder.mkdir(parents=True, exist_ok=True)
    text = (FLORES / f"{lang}.devtest").read_text()
    (folder / "corpus.txt").write_text(text.lower() if lower else text)
    spm.SentencePieceTrainer.train(input=str(folder / "corpus.txt"), model_prefix=str(folder / "tokenizer"),
                                   vocab_size=vocab, model_type="bpe", character_coverage=1.0, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    (folder / "vocab.txt").write_text("\n".join(sp.id_to_piece(i) for i in range(sp.get_piece_size())) + "\n")
    return folder


def build_nemo(name: str, folder: Path) -> Path:
    """A .nemo file of ``name`` at full size, random weights."""
    from nemo.collections.asr.models import EncDecCTCModelBPE, EncDecHybridRNNTCTCBPEModel
    from omegaconf import OmegaConf

    english = name.startswith("parakeet")
    tok = train_tokenizer(folder / "tokenizer", "eng_Latn" if english else "spa_Latn", lower=english)
    cfg = OmegaConf.create(nemo_config(name, str(tok)))
    model = (EncDecCTCModelBPE if english else EncDecHybridRNNTCTCBPEModel)(cfg=cfg)
    path = folder / f"{name}.nemo"
    model.save_to(str(path))
    return path


# --- NLLB ----------------------------------------------------------------------------------------

def nllb_config(name: str):
    from transformers import M2M100Config

    big = name == "nllb-1.3b"
    layers, ffn = (24, 8192) if big else (12, 4096)
    return M2M100Config(vocab_size=256206, d_model=1024, encoder_layers=layers, decoder_layers=layers,
                        encoder_attention_heads=16, decoder_attention_heads=16, encoder_ffn_dim=ffn, decoder_ffn_dim=ffn,
                        max_position_embeddings=1024, scale_embedding=True, activation_function="relu",
                        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2, max_length=200)


def build_nllb(name: str, folder: Path) -> Path:
    """A transformers folder: the model at full size (random weights) and an NllbTokenizer whose
    sentencepiece model is trained on FLORES (its ids stay inside the model's 256206)."""
    import sentencepiece as spm
    from transformers import M2M100ForConditionalGeneration, NllbTokenizer
    from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES

    spm_dir = folder / "spm"
    spm_dir.mkdir(parents=True, exist_ok=True)
    (spm_dir / "corpus.txt").write_text((FLORES / "eng_Latn.devtest").read_text() + (FLORES / "spa_Latn.devtest").read_text())
    spm.SentencePieceTrainer.train(input=str(spm_dir / "corpus.txt"), model_prefix=str(spm_dir / "sentencepiece.bpe"),
                                   vocab_size=8000, model_type="bpe", character_coverage=1.0, minloglevel=2)
    tokenizer = NllbTokenizer.from_pretrained(str(spm_dir), extra_special_tokens=FAIRSEQ_LANGUAGE_CODES)
    model = M2M100ForConditionalGeneration(nllb_config(name))
    out = folder / name
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


# --- XTTS v2 -------------------------------------------------------------------------------------

XTTS_V2_ARGS = dict(gpt_layers=30, gpt_n_model_channels=1024, gpt_n_heads=16, gpt_number_text_tokens=6681,
                    gpt_num_audio_tokens=1026, gpt_start_audio_token=1024, gpt_stop_audio_token=1025,
                    gpt_max_audio_tokens=605, gpt_max_text_tokens=402, gpt_max_prompt_tokens=70,
                    gpt_use_perceiver_resampler=True, gpt_use_masking_gt_prompt_approach=True,
                    decoder_input_dim=1024, d_vector_dim=512)


def xtts_config(vocab_file: str = "", **sizes):
    """XTTS v2's config.json values; ``sizes`` override XTTS_V2_ARGS (the tests' tiny XTTS)."""
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.models.xtts import XttsArgs

    args = XttsArgs(**{**XTTS_V2_ARGS, **sizes}, tokenizer_file=vocab_file)
    # Where coqui-tts's defaults differ (temperature 0.85, repetition_penalty 2.0, gpt_cond_len 12,
    # max_ref_len 10 there).
    return XttsConfig(model_args=args, temperature=0.75, repetition_penalty=5.0, top_k=50, top_p=0.85,
                      gpt_cond_len=30, gpt_cond_chunk_len=4, max_ref_len=30)


def xtts_vocab(out: Path) -> Path:
    """Tortoise's BPE vocabulary (shipped in coqui-tts) with the language tokens of XTTS v2's
    vocab.json, spelled as the real tokenizer emits them ("[en]", "[zh-cn]" …): its encode()
    starts every text with one, and a token missing here would be split into pieces unseen.
    The real vocab.json has 6681 entries."""
    import TTS

    from s3tvr.languages import XTTS_CODES

    vocab = json.loads((Path(TTS.__file__).parent / "tts/utils/assets/tortoise/tokenizer.json").read_text())
    next_id = max(len(vocab["model"]["vocab"]), 1 + max(t["id"] for t in vocab["added_tokens"]))
    for i, code in enumerate(sorted(set(XTTS_CODES.values()))):
        vocab["added_tokens"].append({"id": next_id + i, "special": True, "content": f"[{code}]", "single_word": False,
                                      "lstrip": False, "rstrip": False, "normalized": False})
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps(vocab))
    return out / "vocab.json"


def save_xtts(config, out: Path) -> Path:
    """XTTS at ``config`` with random weights, saved as the real download is: model.pth holding the
    weights and, as coqui's trainer pickled it, the XttsConfig object; config.json; the vocab.json
    that ``config`` names."""
    import torch
    from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer
    from TTS.tts.models import xtts as coqui_xtts
    from TTS.tts.models.xtts import Xtts

    model = Xtts(config)
    model.tokenizer = VoiceBpeTokenizer(vocab_file=config.model_args.tokenizer_file)
    model.init_models()
    # The real file was pickled when XttsArgs/XttsAudioConfig lived in TTS.tts.models.xtts:
    # coqui-tts's _legacy_safe_globals gives the classes that module name again while saving.
    with coqui_xtts._legacy_safe_globals():
        torch.save({"model": model.state_dict(), "config": config}, out / "model.pth")
    config.save_json(str(out / "config.json"))
    return out


def build_xtts(folder: Path) -> Path:
    """XTTS v2 at full size, random weights, in the real files' formats."""
    out = folder / "xtts_v2"
    return save_xtts(xtts_config(str(xtts_vocab(out))), out)


# --- Whisper (CTranslate2) ---------------------------------------------------------------------

WHISPER = {  # d_model, heads, encoder layers, decoder layers, mel bins, vocab
    "base": (512, 8, 6, 6, 80, 51865),
    "small": (768, 12, 12, 12, 80, 51865),
    "large-v3-turbo": (1280, 20, 32, 4, 128, 51866),
}


def whisper_config(name: str, **sizes):
    """transformers' WhisperConfig of ``name``; ``sizes`` override it (the tests' tiny Whisper)."""
    from transformers import WhisperConfig

    d_model, heads, enc, dec, mels, vocab = WHISPER[name]
    values = dict(d_model=d_model, encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_layers=enc,
                  decoder_layers=dec, encoder_ffn_dim=4 * d_model, decoder_ffn_dim=4 * d_model, num_mel_bins=mels,
                  vocab_size=vocab, max_source_positions=1500, max_target_positions=448)
    return WhisperConfig(**{**values, **sizes})


def build_whisper(name: str, folder: Path, quantization: str = "int8", **sizes) -> Path:
    """Whisper ``name`` with random weights as faster-whisper loads it: a CTranslate2 folder
    (model.bin, config.json, tokenizer.json, preprocessor_config.json), converted from transformers'
    model. The tokenizer is bundled Whisper base's (the multilingual one; ids past it are padded by
    the converter), so the language tokens are real ones."""
    import ctranslate2
    from transformers import WhisperForConditionalGeneration, WhisperTokenizerFast

    from s3tvr.weights import bundled

    config = whisper_config(name, **sizes)
    hf = folder / f"{name}-hf"
    tokenizer = WhisperTokenizerFast(tokenizer_file=str(Path(bundled.resolve("bundled:base")) / "tokenizer.json"))
    model = WhisperForConditionalGeneration(config)
    vocab = tokenizer.get_vocab()
    # The converter reads the language tokens from here (the generation config of the real models has them).
    model.generation_config.lang_to_id = {t: i for t, i in vocab.items()
                                          if len(t) <= 9 and t.startswith("<|") and t[2:-2].isalpha() and t[2:-2].islower()
                                          and vocab["<|startoftranscript|>"] < i < vocab["<|translate|>"]}
    model.half().save_pretrained(hf)  # float16 on disk: half of large-v3-turbo's 3.2 GB, and int8 follows anyway
    tokenizer.save_pretrained(hf)
    (hf / "preprocessor_config.json").write_text(json.dumps(
        {"feature_size": config.num_mel_bins, "sampling_rate": 16000, "hop_length": 160, "chunk_length": 30, "n_fft": 400}))
    out = folder / name
    ctranslate2.converters.TransformersConverter(str(hf), copy_files=["tokenizer.json", "preprocessor_config.json"]).convert(
        str(out), quantization=quantization, force=True)
    shutil.rmtree(hf)  # the CTranslate2 folder is what runs; large-v3-turbo's transformers copy is 1.6 GB
    return out


# --- counting --------------------------------------------------------------------------------------

def _unique_params(modules: list) -> int:
    seen: set[int] = set()  # tied weights (NLLB's shared embeddings) count once
    total = 0
    for module in modules:
        for p in module.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel()
    return total


def _xtts_modules(layers: int) -> list:
    from TTS.tts.models.xtts import Xtts

    config = xtts_config()
    config.model_args.gpt_layers = layers
    return [Xtts(config)]


def count_params(name: str) -> int:
    """Parameters of ``name`` without allocating the full model. NLLB is built on PyTorch's meta
    device. NeMo's encoder and XTTS's mel front end call .item() while they are built, which the
    meta device cannot do; their layers are identical, so those are built with one and with two
    layers on the CPU and counted as one + (n - 1) x the second's extra."""
    import torch

    if KINDS[name] == "mt":
        from transformers import M2M100ForConditionalGeneration

        with torch.device("meta"):
            return _unique_params([M2M100ForConditionalGeneration(nllb_config(name))])
    if KINDS[name] == "asr":
        layers = nemo_config(name)["encoder"]["n_layers"]
        one, two = (_unique_params(nemo_modules(name, n)) for n in (1, 2))
    else:
        layers = xtts_config().model_args.gpt_layers
        one, two = (_unique_params(_xtts_modules(n)) for n in (1, 2))
    return one + (layers - 1) * (two - one)

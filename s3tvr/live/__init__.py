"""The live path: microphone (or file, or WebSocket) to the listener's ear, one utterance at a time.

The stages, in the order an utterance meets them (threads in brackets)::

    sources.py       Source: MicSource | FileSource: 16 kHz Blocks, stamped on arrival      [feeder]
                     (pulse.py: PulseSource | AppSource, a pulse source or a program's audio)
    segmenter.py     Silero VAD (and Smart Turn, turn.py): one SpeechSegment per phrase     [feeder]
    simultaneous.py  mode simultaneous: SpeechUpdates of the speech so far, re-read by the  [feeder,
                     ASR and committed by LocalAgreement-2 (agreement.py), clause by clause  asr]
    stages.py        the thin adapters that run a model as a stage: DenoiseStage            [one each]
                     (s3tvr.audio.denoise), AsrStage, MtStage, TtsStage (s3tvr.backends)
    pacing.py        PacedTts: the TTS speaks faster when the listener falls behind
    sinks.py         Sink: SpeakerSink | FileSink | TeeSink, each with the ListenerClock    [session,
                     that stamps what was heard when (pulse.py: VirtualMicSink, a            audio]
                     microphone calls can pick); the speaker tells s3tvr.audio.echo's
                     EchoGuard what it played, in full duplex

How they are held together:

* :mod:`~s3tvr.live.messages`: the frozen messages between them: Block, SpeechSegment,
  SpeechUpdate, Transcript, Translation, AudioChunk and UtteranceEnd, each naming its UttInfo
  (the utterance, its timings stamped as it goes).
* :mod:`~s3tvr.live.pipeline`: Stage, one generic worker per stage over bounded queues (drain,
  cancel, a failure costs one utterance and every utterance ends with one UtteranceEnd), and the
  Reorderer that keeps spoken order.
* :mod:`~s3tvr.live.engine`: Engine, the models of one configuration, loaded once and shared by
  every session (with a lock around those two threads must not call at once).
* :mod:`~s3tvr.live.session`: Session, one run over an engine: its source, segmenter stream,
  voice, queues and workers, sink and latency log (the Collector of
  :mod:`s3tvr.latency.record`), and the RunResult it returns.
* :mod:`~s3tvr.live.talk`: TalkEngine and TalkSession, two people on one device: the ASR stage
  tells each utterance's language and the MT and TTS stages route it into the other.

Who else uses it: ``s3tvr serve`` runs Sessions on one Engine, with a WebSocket Source and Sink
(:mod:`s3tvr.serve.transport`), and its client plays through MicSource and SpeakerSink. Eval runs
a whole Session over each clip (FileSource to FileSink), and calls ``engine.asr`` directly for
the source's transcript when the ASR itself translates. Dubbing and ``finetune prepare`` reuse the Engine for its loaded models
(``engine.asr``, ``.mt``, ``.tts``, ``vad_model()``), called directly, never as stages, and the
segmenter's :func:`~s3tvr.live.segmenter.speech_regions` to find speech in a whole recording;
they use no Session, source or sink.
"""

// The s3tvr serve page: the microphone to the server over a WebSocket (docs/serve.md, the WebSocket protocol), the
// translation played back as it arrives, live captions with each utterance's latency.
// No build step, no framework. Test hooks: window.s3tvr (below), kept current.

const LANGUAGES = {
  en: "English", es: "Spanish", fr: "French", de: "German", it: "Italian", pt: "Portuguese", pl: "Polish",
  tr: "Turkish", ru: "Russian", nl: "Dutch", cs: "Czech", ar: "Arabic", zh: "Chinese", ja: "Japanese",
  hu: "Hungarian", ko: "Korean", hi: "Hindi",
};
const INPUT_RATE = 16000; // what the server takes (its ready frame says so too)
const RECONNECTS = 5; // in a row, after a replica was lost (see reconnecting)
const MAX_UNSENT_SECONDS = 5; // a stalled network: drop microphone audio rather than burst it later

const hooks = {
  state: "idle", // idle, starting, running, ending (end sent), draining (closed, still playing), stopped
  session: null, // the server's session id
  sampleRate: null, // the translation's rate (the ready frame's sample_rate)
  contextRate: null, // the AudioContext's rate
  sentSamples: 0, // 16 kHz microphone samples sent
  droppedSamples: 0, // microphone samples not sent (the network fell behind)
  receivedSamples: 0, // translation samples received (at sampleRate)
  playedSamples: 0, // translation samples played (at sampleRate)
  bufferedSamples: 0, // translation waiting to be played (at the context's rate)
  underruns: 0, // times the playback ran dry before the session ended (between utterances too)
  captions: [], // {session, uttId, sourceId, src, tgt, srcLang, tgtLang, latency: record or null}
  records: [], // the latency events' records, as received
  errors: [], // messages shown
  done: null, // the done frame
  closeCode: null,
  closeReason: null,
  replica: null, // s3tvr serve --ray: the replica of the session (the ready frame's replica)
  talk: null, // s3tvr serve --talk: the conversation's two languages (the ready frame's talk); captions name each direction
  reconnects: 0, // sessions lost with their replica and gone on in a new one
};
window.s3tvr = hooks;

const $ = (id) => document.getElementById(id);
const ui = {
  from: $("from"), to: $("to"), token: $("token"), glossary: $("glossary"), swap: $("swap"), start: $("start"), status: $("status"),
  captions: $("captions"), errors: $("errors"), insecure: $("insecure"), unsupported: $("unsupported"),
  session: $("session"), sessionId: $("session-id"), overlay: $("overlay"),
};

let run = null; // the session under way: {ctx, stream, source, capture, playback, ws, ...}

// --- settings --------------------------------------------------------------------------------

function setupSettings() {
  for (const select of [ui.from, ui.to]) {
    for (const [code, name] of Object.entries(LANGUAGES)) select.add(new Option(`${name} (${code})`, code));
  }
  const params = new URLSearchParams(location.search);
  const stored = (key) => { try { return localStorage.getItem(`s3tvr.${key}`); } catch { return null; } };
  const pick = (key, fallback) => [params.get(key), stored(key), fallback].find((v) => v && v in LANGUAGES);
  ui.from.value = pick("from", "es");
  ui.to.value = pick("to", "en");
  ui.token.value = params.get("token") || "";
  const save = () => {
    try {
      localStorage.setItem("s3tvr.from", ui.from.value);
      localStorage.setItem("s3tvr.to", ui.to.value);
    } catch { /* private mode: not remembered */ }
  };
  ui.from.addEventListener("change", save);
  ui.to.addEventListener("change", save);
  ui.swap.addEventListener("click", () => { [ui.from.value, ui.to.value] = [ui.to.value, ui.from.value]; save(); });
  document.getElementById("settings").addEventListener("submit", (e) => e.preventDefault());
}

function checkBrowser() {
  if (!window.isSecureContext) {
    $("origin").textContent = location.origin;
    ui.insecure.hidden = false;
    return false;
  }
  const missing = [];
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) missing.push("microphone access (getUserMedia)");
  if (!window.AudioWorkletNode) missing.push("AudioWorklet");
  if (!window.WebSocket) missing.push("WebSocket");
  if (missing.length) {
    ui.unsupported.textContent = `This browser lacks ${missing.join(", ")}: use a recent Chrome, Firefox or Safari.`;
    ui.unsupported.hidden = false;
    return false;
  }
  return true;
}

// --- what the page shows ---------------------------------------------------------------------

function setState(state, status) {
  hooks.state = state;
  document.body.dataset.state = state;
  const busy = state === "starting";
  const live = state === "running" || state === "ending" || state === "draining";
  ui.start.classList.toggle("stop", live || busy);
  ui.start.textContent = { starting: "Starting… (tap to cancel)", running: "Stop", ending: "Finishing… (tap to cancel)",
    draining: "Playing the rest… (tap to cancel)" }[state] || "Start";
  for (const el of [ui.from, ui.to, ui.token, ui.swap]) el.disabled = live || busy;
  if (status !== undefined) ui.status.textContent = status;
}

function showError(message) {
  hooks.errors.push(message);
  const p = document.createElement("p");
  p.className = "error";
  p.textContent = message;
  ui.errors.append(p);
  p.scrollIntoView({ block: "nearest" });
}

function nearBottom(el) { return el.scrollHeight - el.scrollTop - el.clientHeight < 48; }

function addCaption(caption) {
  const follow = nearBottom(ui.captions);
  ui.captions.querySelector(".empty")?.remove();
  const item = document.createElement("article");
  item.className = "caption";
  item.dataset.utt = caption.uttId;
  caption.srcLang ||= ui.from.value;
  caption.tgtLang ||= ui.to.value;
  const src = document.createElement("p");
  src.className = "src";
  src.lang = caption.srcLang;
  src.textContent = caption.src;
  const tgt = document.createElement("p");
  tgt.className = "tgt";
  tgt.lang = caption.tgtLang;
  tgt.textContent = caption.tgt;
  const meta = document.createElement("p");
  meta.className = "meta";
  if (hooks.talk) { // a conversation: whose language it was, into whose
    const dir = document.createElement("p");
    dir.className = "dir";
    dir.textContent = `${caption.srcLang} → ${caption.tgtLang}`;
    item.append(dir);
  }
  item.append(src, tgt, meta);
  ui.captions.append(item);
  caption.element = item;
  Object.defineProperty(caption, "element", { enumerable: false }); // keep the hook JSON-friendly
  hooks.captions.push(caption);
  if (follow) ui.captions.scrollTop = ui.captions.scrollHeight;
  return caption;
}

const num = (x) => typeof x === "number" && Number.isFinite(x);
const secs = (x) => `${x.toFixed(2)} s`;

/** One line from a latency record (s3tvr/latency/record.py's UtteranceRecord.to_json): end of speech to first audio
 *  heard (latency_s), to the end of the audio heard (the end offset), and each stage's compute. */
function latencyText(r) {
  const parts = [];
  if (num(r.latency_s)) parts.push(`first audio ${secs(r.latency_s)}`);
  if (num(r.t_play_end) && num(r.t_speech_end)) parts.push(`end offset ${secs(r.t_play_end - r.t_speech_end)}`);
  if (num(r.t_first_audio) && num(r.t_speech_start)) parts.push(`start offset ${secs(r.t_first_audio - r.t_speech_start)}`);
  const stages = r.stages && typeof r.stages === "object" ? r.stages : {};
  const compute = Object.entries(stages)
    .filter(([, s]) => s && num(s.start) && num(s.end))
    .map(([name, s]) => `${name} ${secs(s.end - s.start)}`);
  if (compute.length) parts.push(compute.join(", "));
  if (r.error) parts.push(`failed: ${r.error}`);
  else if (r.skipped) parts.push("skipped");
  return parts.join(" · ") || "no latency measured";
}

function showRecord(record) {
  hooks.records.push(record);
  // Ids count from 0 in each session: after a reconnection (a lost replica), only this session's.
  let caption = hooks.captions.find((c) => c.uttId === record.utt_id && c.session === hooks.session);
  // A skipped clause the server never announced has nothing to show: an empty last clause, or a tail
  // recognised in a pause and dropped when the speaker went on (captions are never taken back).
  if (!caption && record.skipped) return;
  if (!caption) {
    caption = addCaption({ session: hooks.session, uttId: record.utt_id, sourceId: record.source_id ?? record.utt_id,
      src: record.src_text || "", tgt: record.tgt_text || "", srcLang: record.src_lang, tgtLang: record.tgt_lang, latency: null });
  }
  caption.latency = record;
  if (!caption.src && record.src_text) { // the transcript pass (asr.transcript) comes after the translation's audio
    caption.src = record.src_text;
    caption.element.querySelector(".src").textContent = record.src_text;
  }
  const meta = caption.element.querySelector(".meta");
  meta.textContent = latencyText(record);
  meta.title = "first audio: the end of your speech to the first translated audio heard; end offset: to the end of "
    + "the translated audio heard; start offset: the start of your speech to the first audio heard; then each "
    + "stage's compute time";
  caption.element.classList.toggle("failed", Boolean(record.error));
}

function statusLine() {
  if (!run) return;
  const parts = [];
  if (hooks.state === "running") parts.push(hooks.talk ? `Listening to ${hooks.talk.join(" and ")}: each into the other` : "Listening");
  else if (hooks.state === "ending") parts.push("Finishing the translation");
  else if (hooks.state === "draining") parts.push("Playing the rest");
  parts.push(`sent ${(hooks.sentSamples / INPUT_RATE).toFixed(1)} s`);
  if (hooks.sampleRate) {
    parts.push(`heard ${(hooks.playedSamples / hooks.sampleRate).toFixed(1)} s of ${(hooks.receivedSamples / hooks.sampleRate).toFixed(1)} s`);
  }
  const lat = hooks.records.map((r) => r.latency_s).filter(num);
  if (lat.length) parts.push(`mean first-audio latency ${secs(lat.reduce((a, b) => a + b, 0) / lat.length)}`);
  if (hooks.droppedSamples) parts.push(`${(hooks.droppedSamples / INPUT_RATE).toFixed(1)} s of microphone dropped (slow network)`);
  ui.status.textContent = parts.join(" · ");
}

// --- a session -------------------------------------------------------------------------------

function wsUrl() {
  const params = new URLSearchParams({ from: ui.from.value, to: ui.to.value });
  if (ui.token.value.trim()) params.set("token", ui.token.value.trim());
  if (ui.glossary.value.trim()) params.set("glossary", ui.glossary.value.trim()); // this session's words (the server checks them)
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws?${params}`;
}

function micError(err) {
  const name = err && err.name;
  if (name === "NotAllowedError" || name === "SecurityError") return "The microphone was not allowed: allow it for this page in the browser's site settings, then press Start again.";
  if (name === "NotFoundError" || name === "OverconstrainedError") return "No microphone found.";
  if (name === "NotReadableError") return "The microphone is in use by another application, or could not be opened.";
  return `Could not start: ${err && err.message ? err.message : err}`;
}

// The glossary travels in the URL: past this the server can only answer HTTP 414, whose reason a page never sees.
const MAX_URL = 8000; // as s3tvr client checks it (client.MAX_URL)

async function start() {
  if (!checkBrowser()) return;
  if (wsUrl().length > MAX_URL) {
    showError(`The glossary is too long to send (${wsUrl().length} characters encoded, at most ${MAX_URL}): `
      + "keep the terms this conversation needs (accented letters take 6 characters each).");
    return;
  }
  Object.assign(hooks, { session: null, sampleRate: null, sentSamples: 0, droppedSamples: 0, receivedSamples: 0,
    playedSamples: 0, bufferedSamples: 0, underruns: 0, captions: [], records: [], errors: [], done: null,
    closeCode: null, closeReason: null, replica: null, reconnects: 0 });
  ui.captions.replaceChildren();
  ui.errors.replaceChildren();
  setState("starting", "Starting the microphone…");
  // Created in the click itself: mobile browsers only let a user gesture start audio.
  const ctx = new AudioContext({ latencyHint: "interactive" });
  ctx.resume().catch(() => {});
  const r = { ctx, stream: null, source: null, capture: null, playback: null, ws: null, wakeLock: null,
    flushed: null, closed: false, finished: false, timer: null };
  run = r;
  hooks.contextRate = ctx.sampleRate;
  try {
    const loading = ctx.audioWorklet.addModule(new URL("worklets.js", import.meta.url));
    r.stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
    });
    await loading;
  } catch (err) {
    if (!r.finished) showError(micError(err));
    finish(r);
    return;
  }
  if (r.finished) { stopMicrophone(r); return; } // cancelled meanwhile
  for (const track of r.stream.getAudioTracks()) {
    track.addEventListener("ended", () => { // unplugged, or the permission taken back
      if (run === r && hooks.state === "running") { showError("The microphone stopped."); stop(); }
    });
  }
  try {
    r.wakeLock = await navigator.wakeLock?.request("screen"); // the phone's screen stays on while translating
  } catch { /* not granted: fine */ }
  if (r.finished) { stopMicrophone(r); return; }
  ui.status.textContent = "Connecting…";
  connect(r);
  r.timer = setInterval(statusLine, 250);
}

function connect(r) {
  const ws = new WebSocket(wsUrl());
  ws.binaryType = "arraybuffer";
  r.ws = ws;
  ws.onmessage = (event) => onMessage(r, event);
  ws.onclose = (event) => onClose(r, event);
  ws.onerror = () => {}; // the close event that follows says what happened
}

/** A session whose replica was lost (1012, s3tvr serve --ray) goes on in a new one, on the same
 *  microphone and speaker: up to RECONNECTS times, waiting longer each time (once reconnecting,
 *  a busy or unreachable server is waited for too). True: the close is taken care of. */
function reconnecting(r, event) {
  const retry = event.code === 1012 || (r.reconnects > 0 && (event.code === 1013 || event.code === 1006));
  if (!retry || hooks.done || r.cancelled || r.endSent || run !== r || r.attempts >= RECONNECTS) return false;
  r.attempts = (r.attempts || 0) + 1;
  if (event.code === 1012) r.reconnects = (r.reconnects || 0) + 1;
  hooks.reconnects = r.reconnects;
  const wait = Math.min(500 * 2 ** (r.attempts - 1), 8000);
  ui.status.textContent = `${event.reason || "The connection was lost"}: reconnecting in ${wait / 1000} s…`;
  setTimeout(() => { if (run === r && !r.cancelled) connect(r); }, wait);
  return true;
}

/** The session's id, and a link to its caption overlay (/captions) to copy into OBS or open on a screen. */
function showSession(id) {
  ui.session.hidden = !id;
  if (!id) return;
  ui.sessionId.textContent = id;
  const params = new URLSearchParams({ session: id });
  if (ui.token.value.trim()) params.set("token", ui.token.value.trim()); // the overlay is let in as the page is
  ui.overlay.href = `/captions?${params}`;
}

function onReady(r, msg) {
  hooks.session = msg.session ?? null;
  showSession(hooks.session);
  hooks.sampleRate = msg.sample_rate;
  hooks.replica = msg.replica ?? null;
  hooks.talk = Array.isArray(msg.talk) ? msg.talk : null;
  r.attempts = 0;
  if (r.playback) { setState("running"); return; } // a reconnection: the audio nodes go on
  const { ctx } = r;
  r.playback = new AudioWorkletNode(ctx, "s3tvr-playback", {
    numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [1],
    processorOptions: { inRate: msg.sample_rate },
  });
  r.playback.port.onmessage = (event) => onPlaybackStats(r, event.data);
  r.playback.connect(ctx.destination);
  r.capture = new AudioWorkletNode(ctx, "s3tvr-capture", {
    numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1], channelCount: 1, channelCountMode: "explicit",
    processorOptions: { outRate: msg.input_rate || INPUT_RATE },
  });
  r.capture.port.onmessage = (event) => onCaptured(r, event.data);
  r.source = ctx.createMediaStreamSource(r.stream);
  r.source.connect(r.capture);
  r.capture.connect(ctx.destination); // silent: connected only so that the browser runs it
  setState("running");
  statusLine();
}

function onCaptured(r, msg) {
  if (msg.type === "flushed") { r.flushed?.(); return; }
  if (msg.type !== "pcm" || hooks.state !== "running" && hooks.state !== "ending") return;
  const { ws } = r;
  if (!ws || ws.readyState !== WebSocket.OPEN || r.endSent) return;
  const samples = msg.buffer.byteLength / 2;
  if (ws.bufferedAmount > MAX_UNSENT_SECONDS * INPUT_RATE * 2) { hooks.droppedSamples += samples; return; }
  ws.send(msg.buffer);
  hooks.sentSamples += samples;
}

function onPlaybackStats(r, msg) {
  if (msg.type !== "stats" || run !== r) return;
  const rate = hooks.sampleRate || r.ctx.sampleRate;
  hooks.playedSamples = Math.min(hooks.receivedSamples, Math.round(msg.played * rate / r.ctx.sampleRate));
  hooks.bufferedSamples = msg.buffered;
  hooks.underruns = msg.underruns;
  if (msg.drained && r.closed) finish(r);
}

function onMessage(r, event) {
  if (run !== r) return;
  if (typeof event.data !== "string") { // translated speech
    if (!r.playback) return;
    hooks.receivedSamples += event.data.byteLength / 2;
    r.playback.port.postMessage({ type: "pcm", buffer: event.data }, [event.data]);
    return;
  }
  let msg;
  try { msg = JSON.parse(event.data); } catch { showError(`The server sent something unreadable: ${event.data.slice(0, 200)}`); return; }
  switch (msg.type) {
    case "ready": onReady(r, msg); break;
    case "utterance":
      addCaption({ session: hooks.session, uttId: msg.utt_id, sourceId: msg.source_id ?? msg.utt_id, src: msg.src_text || "",
        tgt: msg.tgt_text || "", srcLang: msg.src_lang, tgtLang: msg.tgt_lang, latency: null });
      break;
    case "latency": if (msg.record && typeof msg.record === "object") showRecord(msg.record); break;
    case "error": showError(msg.message || "an error with no message"); break;
    case "done": hooks.done = msg; break;
    default: break; // a newer server's frame: ignored
  }
}

function onClose(r, event) {
  if (r.closed || reconnecting(r, event)) return;
  r.closed = true;
  hooks.closeCode = event.code;
  hooks.closeReason = event.reason || "";
  stopMicrophone(r);
  let status;
  if (hooks.done) {
    const d = hooks.done;
    status = `Done: ${d.utterances ?? hooks.captions.length} utterance(s), ${d.spoken ?? "?"} spoken, ${d.failed ?? 0} failed.`;
  } else if (r.cancelled) {
    status = "Stopped.";
  } else {
    const why = event.reason ? `: ${event.reason}` : event.code === 1006
      ? ": the connection failed (is the server running, and the address right?)" : "";
    const message = `The server closed the session (${event.code})${why}`;
    if (!hooks.errors.some((e) => event.reason && e.includes(event.reason))) showError(message);
    else hooks.errors.push(message);
    status = message;
  }
  if (r.playback && !r.cancelled && hooks.receivedSamples > 0) {
    setState("draining", `${status} Playing the rest…`);
    r.finalStatus = status;
    r.playback.port.postMessage({ type: "end" }); // it reports "drained" once all is played
  } else {
    r.finalStatus = status;
    finish(r);
  }
}

function stopMicrophone(r) {
  try { r.source?.disconnect(); } catch { /* already */ }
  for (const track of r.stream?.getTracks() || []) track.stop();
}

/** Stop: the rest of the microphone's audio, then end; the translation keeps playing until the
 *  server says done and closes. Pressed again: cancel (close without end). */
async function stop() {
  const r = run;
  if (!r) return;
  if (hooks.state !== "running") { cancel(r); return; }
  setState("ending");
  statusLine();
  if (r.capture) {
    await Promise.race([
      new Promise((resolve) => { r.flushed = resolve; r.capture.port.postMessage({ type: "flush" }); }),
      new Promise((resolve) => setTimeout(resolve, 500)),
    ]);
  }
  stopMicrophone(r);
  if (r.ws && r.ws.readyState === WebSocket.OPEN) {
    r.ws.send(JSON.stringify({ type: "end" }));
    r.endSent = true;
  } else if (r.ws && r.ws.readyState === WebSocket.CONNECTING) {
    cancel(r);
  }
}

function cancel(r) {
  r.cancelled = true;
  r.playback?.port.postMessage({ type: "clear" });
  if (r.ws && r.ws.readyState <= WebSocket.OPEN) r.ws.close(1000, "cancelled");
  else finish(r);
}

function finish(r) {
  if (r.finished) return;
  r.finished = true;
  clearInterval(r.timer);
  stopMicrophone(r);
  if (r.ws && r.ws.readyState <= WebSocket.OPEN) r.ws.close(1000, "page stopped");
  r.wakeLock?.release().catch(() => {});
  r.ctx.close().catch(() => {});
  if (run === r) {
    run = null;
    setState("stopped", r.finalStatus ?? "Stopped.");
  }
}

setupSettings();
checkBrowser();
// A phone call or a locked screen can suspend the audio: resume it when the page is back.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && run && run.ctx.state === "suspended") run.ctx.resume().catch(() => {});
});
ui.start.addEventListener("click", () => {
  if (hooks.state === "idle" || hooks.state === "stopped") start();
  else stop();
});
setState("idle");

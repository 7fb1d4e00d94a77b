// The caption overlay of s3tvr serve (/captions): a session's committed captions, source and
// translation, the last few lines, on a transparent page for OBS (docs/serve.md, "Captions").
// Settings from the URL: session=ID|latest, lines=N, show=both|source|translation,
// position=bottom|top, size=PX, color=, source_color=, outline=, bg=, align=, font=, token=.
// Lines only ever arrive: what was logged is never taken back, so the page never changes a line
// it shows; it only adds one and lets the oldest go. Test hooks: window.s3tvrCaptions.

const params = new URLSearchParams(location.search);
const MAX_LINES = 10;
const RETRY_MS = [1000, 2000, 5000, 10000]; // reconnect after a lost connection (the server restarted)

const hooks = {
  state: "connecting", // connecting | open | closed (refused: reason in error)
  session: null, // the session shown now
  lines: [], // every caption received: {session, utt_id, src_text, tgt_text, ...}, in order
  error: null,
};
window.s3tvrCaptions = hooks;

const settings = {
  session: params.get("session") || "latest",
  lines: clamp(parseInt(params.get("lines") || "2", 10), 1, MAX_LINES, 2),
  show: ["both", "source", "translation"].includes(params.get("show")) ? params.get("show") : "both",
  position: params.get("position") === "top" ? "top" : "bottom",
  token: params.get("token") || "",
};

function clamp(n, lo, hi, fallback) {
  return Number.isFinite(n) ? Math.min(hi, Math.max(lo, n)) : fallback;
}

/** The look from the URL: each value checked by the browser's own CSS parser, a bad one ignored. */
function applyStyle() {
  const root = document.documentElement.style;
  const size = clamp(parseFloat(params.get("size") || "48"), 8, 300, 48);
  root.setProperty("--size", `${size}px`);
  const colors = { color: "--color", source_color: "--source-color", outline: "--outline", bg: "--bg" };
  for (const [key, prop] of Object.entries(colors)) {
    const value = params.get(key);
    if (value && CSS.supports("color", value)) root.setProperty(prop, value);
  }
  const align = params.get("align");
  if (["left", "center", "right"].includes(align)) root.setProperty("--align", align);
  const font = params.get("font");
  if (font && CSS.supports("font-family", font)) document.documentElement.style.fontFamily = font;
  box.classList.toggle("top", settings.position === "top");
}

const box = document.getElementById("lines");
const seen = new Set(); // session/utt_id of every line received: a reconnection's history adds only what is new

function add(session, caption) {
  const key = `${session}/${caption.utt_id}`;
  if (seen.has(key)) return;
  seen.add(key);
  const line = { session, ...caption };
  hooks.lines.push(line);
  const item = document.createElement("div");
  item.className = "line";
  const parts = [];
  if (settings.show !== "translation" && line.src_text) parts.push(["src", line.src_text, line.src_lang]);
  if (settings.show !== "source" && line.tgt_text) parts.push(["tgt", line.tgt_text, line.tgt_lang]);
  if (!parts.length) return; // nothing of what this overlay shows (no source line into English without asr.transcript)
  for (const [cls, text, lang] of parts) {
    const p = document.createElement("p");
    p.className = cls;
    p.lang = lang || "";
    p.textContent = text;
    item.append(p);
  }
  box.append(item);
  while (box.children.length > settings.lines) box.firstElementChild.remove();
}

function onMessage(msg) {
  if (msg.type === "captions") {
    hooks.session = msg.session;
    for (const caption of msg.lines || []) add(msg.session, caption);
  } else if (msg.type === "caption") {
    hooks.session = msg.session;
    add(msg.session, msg);
  } else if (msg.type === "session") {
    hooks.session = msg.session; // following the latest: a new session; its lines follow what is shown
  } else if (msg.type === "error") {
    hooks.error = msg.message;
  }
}

let attempts = 0;

function connect() {
  const query = new URLSearchParams({ session: settings.session });
  if (settings.token) query.set("token", settings.token);
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/captions/ws?${query}`);
  hooks.state = "connecting";
  ws.onopen = () => { hooks.state = "open"; attempts = 0; };
  ws.onmessage = (event) => {
    try { onMessage(JSON.parse(event.data)); } catch (err) { console.warn("s3tvr captions: not a caption message", err); }
  };
  ws.onclose = (event) => {
    hooks.state = "closed";
    // A refusal (wrong token, another site's page, a bad session) would be refused again: say so in the log only,
    // never on the overlay, which a stream shows.
    if (event.code === 1008 || event.code === 4400) {
      console.warn(`s3tvr captions: refused: ${event.reason}`);
      return;
    }
    setTimeout(connect, RETRY_MS[Math.min(attempts++, RETRY_MS.length - 1)]);
  };
}

applyStyle();
connect();

// The page's two AudioWorklet processors, in one module so that they share the resampler (one
// addModule call; no import inside a worklet, which not every browser allows).
//   "s3tvr-capture":  microphone at the context's rate -> 16 kHz mono PCM s16le, ~100 ms frames
//                     posted to the main thread (an ArrayBuffer each, transferred).
//   "s3tvr-playback": the server's PCM s16le at its rate -> the context's rate, through a ring
//                     buffer that plays gaplessly across frames and utterances; counts what it plays.

/** A streaming band-limited resampler: windowed-sinc (Blackman) interpolation at each output
 *  sample's fractional input position, the kernel's cutoff at 0.45 x the lower of the two rates
 *  (stopband from its Nyquist frequency: no aliasing when downsampling, no images when upsampling).
 *  The kernel is tabulated for 256 fractional phases (nearest phase: < 1/512 sample of jitter). */
class Resampler {
  constructor(inRate, outRate) {
    this.step = inRate / outRate; // input samples per output sample
    const ratio = Math.min(1, outRate / inRate);
    const fc = 0.45 * ratio; // cutoff, cycles per input sample
    const width = 0.1 * ratio; // transition band: fc - width/2 .. Nyquist of the lower rate
    const half = Math.max(4, Math.ceil(5.5 / width / 2)); // Blackman: ~5.5 / width taps
    const taps = 2 * half;
    const phases = 256;
    this.half = half;
    this.taps = taps;
    this.phases = phases;
    this.table = new Float32Array((phases + 1) * taps);
    for (let p = 0; p <= phases; p++) {
      const frac = p / phases;
      let sum = 0;
      for (let j = 0; j < taps; j++) {
        // tap j multiplies x[i0 - half + 1 + j]; its distance from the output position:
        const d = frac + half - 1 - j;
        const x = 2 * fc * d;
        const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
        const w = Math.abs(d) >= half ? 0 : 0.42 + 0.5 * Math.cos(Math.PI * d / half) + 0.08 * Math.cos(2 * Math.PI * d / half);
        const h = 2 * fc * sinc * w;
        this.table[p * taps + j] = h;
        sum += h;
      }
      for (let j = 0; j < taps; j++) this.table[p * taps + j] /= sum; // unity gain at DC
    }
    // History: `half` zeros before the first sample, so output starts with the input.
    this.buf = new Float32Array(Math.max(4096, taps * 4));
    this.len = half;
    this.pos = half; // the next output sample's position in buf (input samples)
    this.out = new Float32Array(1024);
  }

  /** Takes input samples; returns how many output samples it wrote to this.out. */
  push(input) {
    const n = input.length;
    if (this.len + n > this.buf.length) {
      const keep = Math.floor(this.pos) - this.half + 1; // the oldest sample still needed
      if (keep > 0) {
        this.buf.copyWithin(0, keep, this.len);
        this.len -= keep;
        this.pos -= keep;
      }
      if (this.len + n > this.buf.length) {
        const bigger = new Float32Array(Math.max(this.buf.length * 2, this.len + n));
        bigger.set(this.buf.subarray(0, this.len));
        this.buf = bigger;
      }
    }
    this.buf.set(input, this.len);
    this.len += n;
    const need = Math.ceil((this.len - this.pos) / this.step) + 1;
    if (need > this.out.length) this.out = new Float32Array(need * 2);
    const { buf, table, taps, half, phases, step, out } = this;
    let pos = this.pos;
    let count = 0;
    while (true) {
      const i0 = Math.floor(pos);
      if (i0 + half >= this.len) break;
      let p = Math.round((pos - i0) * phases);
      const base = i0 - half + 1;
      const row = p * taps;
      let acc = 0;
      for (let j = 0; j < taps; j++) acc += buf[base + j] * table[row + j];
      out[count++] = acc;
      pos += step;
    }
    this.pos = pos;
    return count;
  }
}

const FRAME_SECONDS = 0.1;

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const outRate = (options.processorOptions && options.processorOptions.outRate) || 16000;
    this.resampler = new Resampler(sampleRate, outRate);
    this.frameLength = Math.round(outRate * FRAME_SECONDS);
    this.frame = new Int16Array(this.frameLength);
    this.filled = 0;
    this.mono = new Float32Array(128);
    this.running = true;
    this.port.onmessage = (event) => {
      const msg = event.data;
      if (msg.type === "flush") { // the input is over: send what is left, then say so
        this.send();
        this.running = false;
        this.port.postMessage({ type: "flushed" });
      }
    };
  }

  send() {
    if (this.filled === 0) return;
    const pcm = this.filled === this.frameLength ? this.frame : this.frame.slice(0, this.filled);
    this.port.postMessage({ type: "pcm", buffer: pcm.buffer }, [pcm.buffer]);
    this.frame = new Int16Array(this.frameLength);
    this.filled = 0;
  }

  process(inputs) {
    if (!this.running) return false;
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true; // not connected yet
    const n = channels[0].length;
    if (this.mono.length !== n) this.mono = new Float32Array(n);
    const mono = this.mono;
    if (channels.length === 1) {
      mono.set(channels[0]);
    } else { // a microphone that ignored channelCount: 1: average its channels
      mono.fill(0);
      for (const ch of channels) for (let i = 0; i < n; i++) mono[i] += ch[i];
      for (let i = 0; i < n; i++) mono[i] /= channels.length;
    }
    const count = this.resampler.push(mono);
    const out = this.resampler.out;
    for (let i = 0; i < count; i++) {
      const s = Math.max(-1, Math.min(1, out[i]));
      this.frame[this.filled++] = s < 0 ? Math.round(s * 32768) : Math.round(s * 32767);
      if (this.filled === this.frameLength) this.send();
    }
    return true;
  }
}

class PlaybackProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const inRate = (options.processorOptions && options.processorOptions.inRate) || sampleRate;
    this.inRate = inRate;
    this.resampler = inRate === sampleRate ? null : new Resampler(inRate, sampleRate);
    this.ring = new Float32Array(Math.ceil(sampleRate * 10));
    this.read = 0; // ring positions, as counts of samples ever written / read
    this.write = 0;
    this.received = 0; // server samples (its rate) received
    this.stored = 0; // context samples of translation resampled into the ring
    this.played = 0; // context samples of translation played
    this.underruns = 0;
    // After running dry, wait for 60 ms of audio (or 60 ms of waiting) before playing again: a
    // new utterance's first frames then play without crackles between them.
    this.prebuffer = Math.round(sampleRate * 0.06);
    this.starved = true;
    this.waited = 0;
    this.quanta = 0;
    this.ending = false; // no more audio will come: report when the ring is empty
    this.port.onmessage = (event) => {
      const msg = event.data;
      if (msg.type === "pcm") this.add(new Int16Array(msg.buffer));
      else if (msg.type === "end") { this.ending = true; this.flushResampler(); }
      else if (msg.type === "clear") { this.read = this.write; }
    };
  }

  add(pcm) {
    this.received += pcm.length;
    const x = new Float32Array(pcm.length);
    for (let i = 0; i < pcm.length; i++) x[i] = pcm[i] / 32768;
    if (this.resampler) {
      const count = this.resampler.push(x);
      this.store(this.resampler.out, count);
    } else {
      this.store(x, x.length);
    }
  }

  flushResampler() { // the resampler's look-ahead: push zeros so the last samples come out
    if (!this.resampler) return;
    const count = this.resampler.push(new Float32Array(this.resampler.half + 1));
    const want = Math.round(this.received * sampleRate / this.inRate) - this.stored;
    this.store(this.resampler.out, Math.max(0, Math.min(count, want)));
  }

  store(samples, count) {
    const buffered = this.write - this.read;
    if (buffered + count > this.ring.length) { // grow: never drop translated speech
      const bigger = new Float32Array(Math.max(this.ring.length * 2, buffered + count));
      for (let i = 0; i < buffered; i++) bigger[i] = this.ring[(this.read + i) % this.ring.length];
      this.ring = bigger;
      this.write = this.write - this.read;
      this.read = 0;
    }
    const size = this.ring.length;
    let w = this.write % size;
    for (let i = 0; i < count; i++) {
      this.ring[w] = samples[i];
      w = w + 1 === size ? 0 : w + 1;
    }
    this.write += count;
    this.stored += count;
  }

  process(inputs, outputs) {
    const output = outputs[0];
    const n = output[0].length;
    const ch0 = output[0];
    let buffered = this.write - this.read;
    if (this.starved && buffered > 0) {
      this.waited += n;
      if (buffered >= this.prebuffer || this.waited >= this.prebuffer || this.ending) this.starved = false;
    }
    let count = 0;
    if (!this.starved) {
      count = Math.min(n, buffered);
      const size = this.ring.length;
      let r = this.read % size;
      for (let i = 0; i < count; i++) {
        ch0[i] = this.ring[r];
        r = r + 1 === size ? 0 : r + 1;
      }
      this.read += count;
      this.played += count;
      if (count < n) { // ran dry: the server's audio came slower than real time, or an utterance ended
        if (!this.ending) this.underruns += 1;
        this.starved = true;
        this.waited = 0;
      }
    }
    for (let i = count; i < n; i++) ch0[i] = 0;
    for (let c = 1; c < output.length; c++) output[c].set(ch0);
    buffered = this.write - this.read;
    // Report about every 50 ms, and at once when the last audio has been played.
    if (++this.quanta % Math.max(1, Math.round(sampleRate * 0.05 / n)) === 0 || (this.ending && buffered === 0)) {
      this.port.postMessage({
        type: "stats", played: this.played, buffered, received: this.received, underruns: this.underruns,
        drained: this.ending && buffered === 0,
      });
    }
    return true;
  }
}

registerProcessor("s3tvr-capture", CaptureProcessor);
registerProcessor("s3tvr-playback", PlaybackProcessor);

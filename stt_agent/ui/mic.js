// The browser half of MicWidget: microphone -> 16 kHz mono int16 -> ~100 ms binary chunks
// over the widget's comm. No build step: anywidget loads this file as an ES module.
//
// One capture per widget model, however many views show it: the recorder lives in
// `initialize` (once per model), views only draw its state and level.

const TARGET_RATE = 16000;
const PROCESSOR = "stt-agent-pcm16";

// Runs on the audio thread. Inline, so the widget is one file and needs no server route.
const WORKLET_SOURCE = `
class Pcm16Sender extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetRate, chunkSamples } = options.processorOptions;
    this.step = sampleRate / targetRate; // input samples per output sample
    this.chunk = new Int16Array(chunkSamples);
    this.filled = 0;
    this.sumSquares = 0;
    this.t = 0; // read position; index 0 is the last sample of the previous block
    this.prev = 0;
    this.taps = this.step > 1 ? Pcm16Sender.lowpass(this.step) : null;
    this.history = this.taps ? new Float32Array(this.taps.length - 1) : null;
    this.port.onmessage = (event) => {
      if (event.data === "flush") {
        this.send(true);
        this.port.postMessage({ flushed: true });
      }
    };
  }

  // Windowed-sinc low-pass below the new Nyquist, so downsampling does not alias.
  static lowpass(step) {
    const n = Math.max(15, Math.round(step * 16) | 1);
    const cutoff = 0.45 / step;
    const taps = new Float32Array(n);
    const mid = (n - 1) / 2;
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const x = i - mid;
      const sinc = x === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * x) / (Math.PI * x);
      const window = 0.42 - 0.5 * Math.cos((2 * Math.PI * i) / (n - 1)) + 0.08 * Math.cos((4 * Math.PI * i) / (n - 1));
      taps[i] = sinc * window;
      sum += taps[i];
    }
    for (let i = 0; i < n; i++) taps[i] /= sum;
    return taps;
  }

  send(partial) {
    if (this.filled === 0 || (!partial && this.filled < this.chunk.length)) return;
    const pcm = this.chunk.slice(0, this.filled);
    const rms = Math.sqrt(this.sumSquares / this.filled);
    this.port.postMessage({ pcm: pcm.buffer, rms }, [pcm.buffer]);
    this.filled = 0;
    this.sumSquares = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const n = channels[0].length;
    let mono = new Float32Array(n);
    for (const channel of channels) {
      for (let i = 0; i < n; i++) mono[i] += channel[i] / channels.length;
    }
    if (this.taps) {
      const taps = this.taps;
      const ext = new Float32Array(this.history.length + n);
      ext.set(this.history);
      ext.set(mono, this.history.length);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        let acc = 0;
        for (let k = 0; k < taps.length; k++) acc += taps[k] * ext[i + k];
        out[i] = acc;
      }
      this.history = ext.slice(n);
      mono = out;
    }
    // Linear interpolation over [prev, mono...]: exact when the context already runs at 16 kHz.
    while (this.t < n) {
      const i = Math.floor(this.t);
      const frac = this.t - i;
      const a = i === 0 ? this.prev : mono[i - 1];
      const b = mono[i];
      let s = a + (b - a) * frac;
      s = s < -1 ? -1 : s > 1 ? 1 : s;
      this.sumSquares += s * s;
      this.chunk[this.filled++] = s < 0 ? Math.round(s * 32768) : Math.round(s * 32767);
      if (this.filled === this.chunk.length) this.send(false);
      this.t += this.step;
    }
    this.t -= n;
    this.prev = mono[n - 1];
    return true;
  }
}
registerProcessor("${PROCESSOR}", Pcm16Sender);
`;

const FAILURES = {
  NotAllowedError: "denied",
  SecurityError: "denied",
  PermissionDeniedError: "denied",
  NotFoundError: "no-device",
  DevicesNotFoundError: "no-device",
  OverconstrainedError: "no-device",
};

const MESSAGES = {
  denied: "Microphone access was denied. Allow it for this site (the icon in the address bar), then press Start.",
  "no-device": "No microphone was found. Connect one or check the system's input settings, then press Start.",
  insecure:
    "This page is not a secure context, so the browser offers no microphone. Open JupyterLab over https " +
    "or at http://localhost / http://127.0.0.1.",
};

function describe(error) {
  if (error && error.name === "NotReadableError") {
    return "The microphone could not be opened: another application may be using it, or the OS blocked it.";
  }
  return `${(error && error.name) || "Error"}: ${(error && error.message) || error}`;
}

function openContext(rate) {
  // By default ask for 16 kHz so the browser's own resampler does the work; at the device's
  // rate (rate 0, or where a fixed rate is not offered) the worklet resamples.
  if (rate > 0) {
    try {
      return new AudioContext({ sampleRate: rate, latencyHint: "interactive" });
    } catch {
      // fall through
    }
  }
  return new AudioContext({ latencyHint: "interactive" });
}

class Recorder {
  constructor(model) {
    this.model = model;
    this.session = null; // {stream, context, node, url, cancelled}
    this.autostarted = false;
    this.lastLevelSync = 0;
  }

  get busy() {
    return this.session !== null;
  }

  setState(state, message = "") {
    this.model.set("state", state);
    this.model.set("message", message);
    if (state !== "recording") this.model.set("level", 0);
    this.model.save_changes();
  }

  async start() {
    if (this.session) return;
    if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      this.setState("insecure", MESSAGES.insecure);
      return;
    }
    const session = { stream: null, context: null, node: null, url: null, cancelled: false };
    this.session = session;
    this.setState("requesting", "Waiting for permission to use the microphone…");
    try {
      // Speech models want the raw signal: the browser's gain control and noise suppression
      // clip and smear it. Echo cancellation etc. only when asked (speakers playing nearby).
      const processing = Boolean(this.model.get("audio_processing"));
      session.stream = await navigator.mediaDevices.getUserMedia({
        audio: {
          channelCount: 1,
          echoCancellation: processing,
          noiseSuppression: processing,
          autoGainControl: processing,
        },
      });
      if (session.cancelled) throw new DOMException("stopped", "AbortError");
      const track = session.stream.getAudioTracks()[0];
      if (!track) throw new DOMException("the stream has no audio track", "NotFoundError");

      let context = openContext(this.model.get("capture_rate"));
      let source;
      try {
        source = context.createMediaStreamSource(session.stream);
      } catch {
        // Firefox cannot connect a stream to a context at another rate: use the device rate.
        await context.close();
        context = new AudioContext({ latencyHint: "interactive" });
        source = context.createMediaStreamSource(session.stream);
      }
      session.context = context;
      session.url = URL.createObjectURL(new Blob([WORKLET_SOURCE], { type: "text/javascript" }));
      await context.audioWorklet.addModule(session.url);
      const chunkSamples = Math.round((TARGET_RATE * this.model.get("chunk_ms")) / 1000);
      const node = new AudioWorkletNode(context, PROCESSOR, {
        numberOfInputs: 1,
        numberOfOutputs: 1,
        channelCount: 1,
        channelCountMode: "explicit",
        processorOptions: { targetRate: TARGET_RATE, chunkSamples },
      });
      session.node = node;
      node.port.onmessage = (event) => this.onChunk(event.data);
      if (context.state !== "running") {
        await Promise.race([context.resume(), new Promise((r) => setTimeout(r, 1000))]);
      }
      if (session.cancelled) throw new DOMException("stopped", "AbortError");
      if (context.state !== "running") {
        // Autoplay policy: the page has had no click or key press yet.
        session.waitingForClick = true;
        this.setState("requesting", "Click Start to let the browser record audio.");
        await new Promise((resolve) => (session.resumed = resolve));
        if (session.cancelled) throw new DOMException("stopped", "AbortError");
      }
      track.addEventListener("ended", () => this.stop("error", "The microphone was disconnected."));
      this.model.set("context_rate", context.sampleRate);
      // State first: the kernel sees "recording" before the first chunk (comm order is kept).
      this.setState("recording", "");
      source.connect(node);
      node.connect(context.destination); // outputs silence; keeps the node pulled by the graph
    } catch (error) {
      const cancelled = session.cancelled;
      await this.release(session);
      if (cancelled) return;
      const state = FAILURES[error && error.name] || "error";
      this.setState(state, MESSAGES[state] || describe(error));
    }
  }

  onChunk(data) {
    if (!data.pcm) return;
    this.model.send({ type: "audio" }, undefined, [data.pcm]);
    const db = 20 * Math.log10(Math.max(data.rms, 1e-6));
    const level = Math.min(1, Math.max(0, (db + 60) / 60));
    this.model.set("level", Math.round(level * 100) / 100);
    const now = performance.now();
    if (now - this.lastLevelSync > 200) {
      this.lastLevelSync = now;
      this.model.save_changes();
    }
  }

  async resumeAfterClick() {
    const session = this.session;
    if (!session || !session.waitingForClick || !session.context) return;
    await session.context.resume();
    if (session.context.state === "running" && session.resumed) {
      session.waitingForClick = false;
      session.resumed();
    }
  }

  async stop(state = "stopped", message = "") {
    const session = this.session;
    if (!session) {
      if (this.model.get("state") === "recording") this.setState(state, message);
      return;
    }
    session.cancelled = true;
    if (session.resumed) session.resumed();
    if (session.node && this.model.get("state") === "recording") {
      // Send the last partial chunk before saying "stopped", so nothing said is lost.
      const node = session.node;
      await Promise.race([
        new Promise((resolve) => {
          node.port.onmessage = (event) => {
            this.onChunk(event.data);
            if (event.data.flushed) resolve();
          };
          node.port.postMessage("flush");
        }),
        new Promise((resolve) => setTimeout(resolve, 500)),
      ]);
    }
    await this.release(session);
    this.setState(state, message);
  }

  dispose() {
    // No state to report: the model is gone with its comm.
    const session = this.session;
    if (!session) return;
    session.cancelled = true;
    if (session.resumed) session.resumed();
    this.release(session);
  }

  async release(session) {
    if (this.session === session) this.session = null;
    if (session.stream) for (const track of session.stream.getTracks()) track.stop();
    if (session.node) session.node.disconnect();
    if (session.context && session.context.state !== "closed") {
      try {
        await session.context.close();
      } catch {
        // already closing
      }
    }
    if (session.url) URL.revokeObjectURL(session.url);
  }
}

// anywidget hands `initialize` and each view its own proxy of the model, so the proxies cannot
// be the key: the widget's `_instance` id (one per Python object) is.
const recorders = new Map();

function recorderFor(model) {
  const key = model.get("_instance");
  let recorder = recorders.get(key);
  if (!recorder) {
    recorder = new Recorder(model);
    recorders.set(key, recorder);
  }
  return recorder;
}

function initialize({ model }) {
  const recorder = recorderFor(model);
  const onCommand = (msg) => {
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "start") recorder.start();
    else if (msg.type === "stop") recorder.stop();
  };
  model.on("msg:custom", onCommand);
  return () => {
    // The widget was closed: let go of the microphone.
    model.off("msg:custom", onCommand);
    recorders.delete(model.get("_instance"));
    recorder.dispose();
  };
}

const LABELS = {
  idle: "idle",
  requesting: "requesting access…",
  recording: "recording",
  stopped: "stopped",
  denied: "access denied",
  "no-device": "no microphone",
  insecure: "not a secure context",
  error: "error",
};

function render({ model, el }) {
  const recorder = recorderFor(model);
  const root = document.createElement("div");
  root.className = "stt-mic";
  const button = document.createElement("button");
  button.className = "stt-mic-button jupyter-button";
  const meter = document.createElement("div");
  meter.className = "stt-mic-meter";
  meter.title = "input level";
  const bar = document.createElement("div");
  bar.className = "stt-mic-level";
  meter.appendChild(bar);
  const state = document.createElement("span");
  state.className = "stt-mic-state";
  const message = document.createElement("div");
  message.className = "stt-mic-message";
  root.append(button, meter, state, message);
  el.appendChild(root);

  const draw = () => {
    const s = model.get("state");
    const waiting = recorder.session && recorder.session.waitingForClick;
    const active = !waiting && (recorder.busy || s === "recording");
    root.dataset.state = s;
    button.textContent = active ? "■ Stop" : "● Start";
    button.title = active ? "Stop recording" : "Record from the microphone";
    const rate = model.get("context_rate");
    state.textContent = LABELS[s] || s;
    state.title = rate ? `captured at ${rate} Hz, sent at ${TARGET_RATE} Hz` : "";
    message.textContent = model.get("message");
    bar.style.width = `${Math.round((s === "recording" ? model.get("level") : 0) * 100)}%`;
  };
  button.addEventListener("click", () => {
    if (recorder.session && recorder.session.waitingForClick) recorder.resumeAfterClick();
    else if (recorder.busy) recorder.stop();
    else recorder.start();
  });
  model.on("change:state", draw);
  model.on("change:message", draw);
  model.on("change:level", draw);
  model.on("change:context_rate", draw);
  draw();
  if (model.get("autostart") && !recorder.autostarted && !recorder.busy) {
    recorder.autostarted = true;
    recorder.start();
  }
}

export default { initialize, render };

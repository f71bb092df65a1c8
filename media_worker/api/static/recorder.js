// A greeting from the microphone as a WAV file. MediaRecorder would give WebM/Opus in
// Chromium, which the API does not take; raw PCM from the Web Audio API, resampled by
// the browser to 8 kHz mono and written as 16-bit WAV, is what the phone plays anyway.

const TARGET_RATE = 8000;

export class Recorder {
  constructor(maxSeconds, onTick) {
    this.maxSeconds = maxSeconds;
    this.onTick = onTick;
    this.chunks = [];
    this.length = 0;
  }

  async start() {
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true },
    });
    this.context = new AudioContext();
    this.rate = this.context.sampleRate;
    const source = this.context.createMediaStreamSource(this.stream);
    // ScriptProcessor is deprecated but needs no second module file and runs in every
    // browser; an AudioWorklet would gain nothing for a one-minute recording.
    this.node = this.context.createScriptProcessor(4096, 1, 1);
    this.node.onaudioprocess = (event) => {
      const samples = event.inputBuffer.getChannelData(0);
      this.chunks.push(new Float32Array(samples));
      this.length += samples.length;
      const seconds = this.length / this.rate;
      this.onTick(seconds);
      if (seconds >= this.maxSeconds) this.stop();
    };
    source.connect(this.node);
    this.node.connect(this.context.destination); // a ScriptProcessor runs only when connected
    this.started = true;
    this.done = new Promise((resolve) => {
      this.finish = resolve;
    });
  }

  // Resolves to a WAV Blob (also when the limit stopped the recording itself).
  async stop() {
    if (this.started && !this.stopped) {
      this.stopped = true;
      this.node.disconnect();
      for (const track of this.stream.getTracks()) track.stop();
      await this.context.close();
      this.finish(await toWav(this.chunks, this.length, this.rate));
    }
    return this.done;
  }
}

async function toWav(chunks, length, rate) {
  const samples = new Float32Array(Math.max(length, 1));
  let offset = 0;
  for (const chunk of chunks) {
    samples.set(chunk, offset);
    offset += chunk.length;
  }
  return encodeWav(await resample(samples, rate), TARGET_RATE);
}

// The browser's own resampler (OfflineAudioContext) filters before it decimates.
async function resample(samples, rate) {
  if (rate === TARGET_RATE) return samples;
  const frames = Math.max(1, Math.round((samples.length * TARGET_RATE) / rate));
  const offline = new OfflineAudioContext(1, frames, TARGET_RATE);
  const buffer = offline.createBuffer(1, samples.length, rate);
  buffer.copyToChannel(samples, 0);
  const source = offline.createBufferSource();
  source.buffer = buffer;
  source.connect(offline.destination);
  source.start();
  const rendered = await offline.startRendering();
  return rendered.getChannelData(0);
}

export function encodeWav(samples, rate) {
  const data = samples.length * 2;
  const view = new DataView(new ArrayBuffer(44 + data));
  const text = (at, value) => {
    for (let i = 0; i < value.length; i += 1) view.setUint8(at + i, value.charCodeAt(i));
  };
  text(0, "RIFF");
  view.setUint32(4, 36 + data, true);
  text(8, "WAVE");
  text(12, "fmt ");
  view.setUint32(16, 16, true); // PCM format chunk size
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, rate, true);
  view.setUint32(28, rate * 2, true); // bytes per second
  view.setUint16(32, 2, true); // block align
  view.setUint16(34, 16, true); // bits per sample
  text(36, "data");
  view.setUint32(40, data, true);
  for (let i = 0; i < samples.length; i += 1) {
    const clipped = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(44 + i * 2, clipped < 0 ? clipped * 0x8000 : clipped * 0x7fff, true);
  }
  return new Blob([view], { type: "audio/wav" });
}

/**
 * The microphone as 16 kHz mono PCM16 frames (what /ws/stt and /ws/dialogue take): getUserMedia
 * → Web Audio → downsampled in the page. Echo cancellation stays on for conversations (so the
 * reply's own sound is not taken for the user) unless turned off.
 */
export interface Mic {
  stop(): void;
}

/** What a person can do about a microphone that would not open (the browser's own words are cryptic). */
export function micProblem(error: unknown): Error {
  const name = (error as { name?: string } | null)?.name ?? '';
  if (name === 'NotAllowedError' || name === 'SecurityError')
    return new Error('Allow microphone access for this page (the browser blocked it: use the microphone icon in the address bar or the site settings), then try again.');
  if (name === 'NotFoundError' || name === 'OverconstrainedError') return new Error('No microphone found: connect one and try again, or type instead.');
  if (name === 'NotReadableError' || name === 'AbortError') return new Error('The microphone could not be started: another application may be using it.');
  return error instanceof Error ? error : new Error(String(error));
}

/** getUserMedia with errors a person can act on. */
export async function openMicrophone(constraints: MediaStreamConstraints): Promise<MediaStream> {
  if (!navigator.mediaDevices?.getUserMedia) throw new Error('The microphone needs a secure page: open the playground over https:// or on http://localhost.');
  try {
    return await navigator.mediaDevices.getUserMedia(constraints);
  } catch (error) {
    throw micProblem(error);
  }
}

export async function startMic(onFrame: (pcm: Int16Array) => void, options: { echoCancellation?: boolean } = {}): Promise<Mic> {
  const stream = await openMicrophone({
    audio: { channelCount: 1, echoCancellation: options.echoCancellation ?? true, noiseSuppression: false, autoGainControl: false },
  });
  const context = new AudioContext();
  const source = context.createMediaStreamSource(stream);
  // ScriptProcessor is deprecated but needs no separate worklet file; 4096 frames ≈ 85 ms at 48 kHz
  const processor = context.createScriptProcessor(4096, 1, 1);
  const ratio = context.sampleRate / 16000;
  let carry = 0;
  processor.onaudioprocess = (event) => {
    const input = event.inputBuffer.getChannelData(0);
    const out: number[] = [];
    let position = carry;
    for (; position < input.length; position += ratio) {
      const s = input[Math.floor(position)]!;
      out.push(Math.max(-32768, Math.min(32767, Math.round(s * 32767))));
    }
    carry = position - input.length;
    onFrame(Int16Array.from(out));
  };
  source.connect(processor);
  processor.connect(context.destination);
  return {
    stop() {
      processor.disconnect();
      source.disconnect();
      for (const track of stream.getTracks()) track.stop();
      void context.close();
    },
  };
}

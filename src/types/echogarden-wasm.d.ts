/** Types for the Echogarden WASM packages (no types of their own): the parts this project uses. */
/** @echogarden/espeak-ng-emscripten: */
declare module '@echogarden/espeak-ng-emscripten' {
  export interface EspeakVoiceInfo {
    name: string;
    identifier: string;
    languages: { priority: number; name: string }[];
  }
  export interface ESpeakNGWorker {
    list_voices(): EspeakVoiceInfo[];
    /** 0 on success. */
    set_voice(name: string): number;
    set_rate(wordsPerMinute: number): number;
    set_pitch(pitch: number): number;
    /** Calls back with ~100 ms of 22.05 kHz samples at a time; a truthy return stops synthesis. */
    synthesize(text: string, callback: (samples: Int16Array | undefined, events: unknown[]) => number | boolean | undefined): void;
  }
  interface EspeakModule {
    eSpeakNGWorker: new () => ESpeakNGWorker;
  }
  const init: () => Promise<EspeakModule>;
  export default init;
}

/** The parts of @echogarden/fvad-wasm (libfvad, the WebRTC VAD, as WASM; no types of its own) the VAD uses. */
declare module '@echogarden/fvad-wasm' {
  interface FvadModule {
    _fvad_new(): number;
    _fvad_free(handle: number): void;
    _fvad_reset(handle: number): void;
    /** 0 on success. */
    _fvad_set_mode(handle: number, mode: number): number;
    /** 0 on success (8000, 16000, 32000, 48000). */
    _fvad_set_sample_rate(handle: number, rate: number): number;
    /** 1 voice, 0 no voice, -1 bad frame length (10, 20 or 30 ms). */
    _fvad_process(handle: number, frame: number, length: number): number;
    _malloc(bytes: number): number;
    _free(pointer: number): void;
    HEAP16: Int16Array;
  }
  const init: () => Promise<FvadModule>;
  export default init;
}

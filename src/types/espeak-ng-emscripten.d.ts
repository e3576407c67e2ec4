/** The parts of @echogarden/espeak-ng-emscripten (no types of its own) the embedded voice uses. */
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

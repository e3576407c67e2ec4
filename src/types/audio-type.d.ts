/** audio-type ships no types: the one function this project uses. */
declare module 'audio-type' {
  /** The container/codec name audio-decode registers a decoder under ('wav', 'mp3', 'oga', 'opus', 'm4a', …), or undefined. */
  export default function audioType(bytes: Uint8Array): string | undefined;
}

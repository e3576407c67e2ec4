/**
 * Whisper's languages: ISO-639-1 codes on our own routes and in the engine port, English names
 * ("english") where the OpenAI API uses them (verbose_json). Names come from ICU
 * (Intl.DisplayNames), so no table of 99 names is kept here; upstreams may answer either form.
 */
export const WHISPER_CODES = (
  'en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no th ur hr bg lt la mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw gl mr pa si km sn yo so af oc ka be tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl mg as tt haw ln ha ba jw su yue'
).split(' ');

const names = new Intl.DisplayNames(['en'], { type: 'language' });
const nameOf = (code: string) => (names.of(code) ?? code).toLowerCase();
const byName = new Map(WHISPER_CODES.map((code) => [nameOf(code), code]));
// the names OpenAI/whisper use where ICU's differ
for (const [name, code] of [
  ['castilian', 'es'],
  ['flemish', 'nl'],
  ['haitian', 'ht'],
  ['moldavian', 'ro'],
  ['valencian', 'ca'],
  ['javanese', 'jw'],
  ['burmese', 'my'],
  ['cantonese', 'yue'],
] as const)
  byName.set(name, code);

/** A code ("en") from a code or a name ("english", "English"); unknown values pass through lowercased. */
export function languageCode(value: string): string {
  const v = value.trim().toLowerCase();
  if (WHISPER_CODES.includes(v)) return v;
  return byName.get(v) ?? v;
}

/** The English name OpenAI's verbose_json uses ("english") for a code. */
export function languageName(code: string): string {
  const c = languageCode(code);
  return WHISPER_CODES.includes(c) ? nameOf(c) : c;
}

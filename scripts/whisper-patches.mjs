// Source patches for smart-whisper 0.8.1's bundled (2024) whisper.cpp, applied before the rebuild
// in scripts/build-whisper.mjs. Each ports a behaviour of current whisper.cpp (checked against the
// v1.9.3 sources that @fugood/whisper.node ships on npm):
//  1. single-timestamp ending: when a window's output ends on a lone timestamp (text, <|t|>, EOT),
//     the rest of the window is silence: skip to the next window instead of encoding its rest again
//     (OpenAI's reference does the same). Without it a 2 s utterance in a 30 s window costs up to
//     ~15 encoder passes (issue 17).
//  2. no_speech_prob: the probability of <|nospeech|> at the SOT position of each window's first
//     decoder pass, from the raw logits (as OpenAI's reference and whisper.cpp 1.9.3 compute it),
//     stored on each segment and returned by the binding as `no_speech_prob`.
// Every edit is an exact find/replace that must match once; a mismatch fails the rebuild (the
// caller keeps the previous build) rather than compiling something half-patched.
import fs from 'node:fs';
import path from 'node:path';

export const PATCH_ID = 'gemma-3-api-whisper-patches-1';
const TAG = '// gemma-3-api patch';

const WHISPER = 'whisper.cpp/src/whisper.cpp';
const HEADER = 'whisper.cpp/include/whisper.h';
const BINDING = 'src/binding/transcribe.cc';

const edits = [
  {
    file: WHISPER,
    find: '    bool speaker_turn_next;\n};\n\nstruct whisper_batch {',
    replace: `    bool speaker_turn_next;\n\n    float no_speech_prob; ${TAG}\n};\n\nstruct whisper_batch {`,
  },
  {
    file: WHISPER,
    find: 'struct whisper_state {\n    int64_t t_sample_us = 0;',
    replace: `struct whisper_state {\n    float no_speech_prob = 0.0f; ${TAG}\n    int64_t t_sample_us = 0;`,
  },
  {
    file: WHISPER,
    find: `                whisper_batch_prep_legacy(state->batch, prompt.data(), prompt.size(), 0, 0);

                if (!whisper_decode_internal(*ctx, *state, state->batch, params.n_threads, false, params.abort_callback, params.abort_callback_user_data)) {
                    WHISPER_LOG_ERROR("%s: failed to decode\\n", __func__);
                    return -7;
                }
`,
    replace: `                whisper_batch_prep_legacy(state->batch, prompt.data(), prompt.size(), 0, 0);
                const int sot_index = (int) (prompt.size() - prompt_init.size()); ${TAG}
                state->batch.logits[sot_index] = 1;

                if (!whisper_decode_internal(*ctx, *state, state->batch, params.n_threads, false, params.abort_callback, params.abort_callback_user_data)) {
                    WHISPER_LOG_ERROR("%s: failed to decode\\n", __func__);
                    return -7;
                }

                { ${TAG}: softmax of the raw logits at SOT, probability of <|nospeech|>
                    const int n_vocab = ctx->vocab.n_vocab;
                    const float * row = state->logits.data() + (size_t) sot_index*n_vocab;
                    float max = row[0];
                    for (int k = 1; k < n_vocab; ++k) max = std::max(max, row[k]);
                    double sum = 0.0;
                    for (int k = 0; k < n_vocab; ++k) sum += std::exp((double) (row[k] - max));
                    state->no_speech_prob = (float) (std::exp((double) (row[whisper_token_nosp(ctx)] - max)) / sum);
                }
`,
  },
  {
    file: WHISPER,
    find: 'result_all.push_back({ tt0, tt1, text, {}, speaker_turn_next });',
    replace: `result_all.push_back({ tt0, tt1, text, {}, speaker_turn_next, state->no_speech_prob }); ${TAG}`,
  },
  {
    file: WHISPER,
    find: 'result_all.push_back({ tt0, tt1, text, {} , speaker_turn_next });',
    replace: `result_all.push_back({ tt0, tt1, text, {} , speaker_turn_next, state->no_speech_prob }); ${TAG}`,
  },
  {
    file: WHISPER,
    find: `            const auto seek_delta = best_decoder.seek_delta;
            const auto result_len = best_decoder.sequence.result_len;`,
    replace: `            auto seek_delta = best_decoder.seek_delta; ${TAG}: not const (single-timestamp ending)
            const auto result_len = best_decoder.sequence.result_len;`,
  },
  {
    file: WHISPER,
    find: `            // update audio window
            seek += seek_delta;
`,
    replace: `            { ${TAG}: single-timestamp ending, as whisper.cpp 1.9.3 (ggml-org/whisper.cpp#2629)
                const bool max_tokens_timestamp_ending = params.max_tokens > 0 &&
                    !params.single_segment &&
                    tokens_cur.size() > (size_t) params.max_tokens;
                const bool single_timestamp_ending = tokens_cur.size() > 1 &&
                    !max_tokens_timestamp_ending &&
                    tokens_cur[tokens_cur.size() - 2].id < whisper_token_beg(ctx) &&
                    tokens_cur[tokens_cur.size() - 1].id > whisper_token_beg(ctx);
                if (single_timestamp_ending) {
                    seek_delta = std::min(seek_end - seek, WHISPER_CHUNK_SIZE * 100);
                }
            }

            // update audio window
            seek += seek_delta;
`,
  },
  {
    file: WHISPER,
    find: 'bool whisper_full_get_segment_speaker_turn_next_from_state(struct whisper_state * state, int i_segment) {',
    replace: `float whisper_full_get_segment_no_speech_prob_from_state(struct whisper_state * state, int i_segment) { ${TAG}
    return state->result_all[i_segment].no_speech_prob;
}

bool whisper_full_get_segment_speaker_turn_next_from_state(struct whisper_state * state, int i_segment) {`,
  },
  {
    file: HEADER,
    find: '    WHISPER_API bool whisper_full_get_segment_speaker_turn_next_from_state(struct whisper_state * state, int i_segment);',
    replace: `    WHISPER_API bool whisper_full_get_segment_speaker_turn_next_from_state(struct whisper_state * state, int i_segment);
    WHISPER_API float whisper_full_get_segment_no_speech_prob_from_state(struct whisper_state * state, int i_segment); ${TAG}`,
  },
];

/** The binding's two segment builders ("simple" and "detail") both get `no_speech_prob`. */
function patchBinding(text) {
  const find = /( *)segment\.Set\("text",\s*\n?\s*Napi::String::New\(\s*Env\(\), whisper_full_get_segment_text_from_state\(state, i\)\)\);/g;
  const matches = text.match(find) ?? [];
  if (matches.length !== 2) throw new Error(`${BINDING}: expected 2 segment builders, found ${matches.length}`);
  return text.replace(find, (m, indent) => `${m}\n${indent}segment.Set("no_speech_prob", Napi::Number::New(Env(), whisper_full_get_segment_no_speech_prob_from_state(state, i))); ${TAG}`);
}

/** Applies every edit to the smart-whisper package at `dir`; a no-op where already applied. */
export function applyWhisperPatches(dir) {
  const files = new Map();
  const read = (file) => files.get(file) ?? fs.readFileSync(path.join(dir, file), 'utf8');
  for (const edit of edits) {
    const text = read(edit.file);
    if (text.includes(edit.replace)) continue;
    const at = text.indexOf(edit.find);
    if (at < 0 || text.indexOf(edit.find, at + 1) >= 0) throw new Error(`${edit.file}: patch target not found exactly once: ${edit.find.slice(0, 80)}`);
    files.set(edit.file, text.slice(0, at) + edit.replace + text.slice(at + edit.find.length));
  }
  const binding = read(BINDING);
  if (!binding.includes('"no_speech_prob"')) files.set(BINDING, patchBinding(binding));
  for (const [file, text] of files) fs.writeFileSync(path.join(dir, file), text);
  return files.size;
}

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
//  3. whisper_state reuse: the binding created a whisper_state (KV caches and compute buffers,
//     ~220 MB for a tiny-sized model) for every transcribe call and freed it after; the service calls
//     it per 30 s window. Each loaded model now keeps a free-list of idle states (never more than
//     the most transcriptions that ran on it at once; freed with the model), and a reused state is
//     first reset to what a fresh one decodes from (whisper_state_reset_for_reuse below), so results
//     stay identical (test/contract/stt-state-reuse.test.ts).
//  4. llamafile's tinyBLAS matrix kernels (vendored in this whisper.cpp as ggml/src/sgemm.cpp, but
//     not built by smart-whisper): compiled in with GGML_USE_LLAMAFILE, as current whisper.cpp does
//     by default. With AVX-512 (scripts/build-whisper.mjs) it brings a 30 s window from ~1.69 s to
//     ~1.47 s of CPU, level with whisper.cpp 1.9.3's CLI (docs/benchmarks.md); with AVX2 it changes
//     nothing measurable.
// Every edit is an exact find/replace that must match once; a mismatch fails the rebuild (the
// caller keeps the previous build) rather than compiling something half-patched.
import fs from 'node:fs';
import path from 'node:path';

export const PATCH_ID = 'gemma-3-api-whisper-patches-3';
const TAG = '// gemma-3-api patch';

const WHISPER = 'whisper.cpp/src/whisper.cpp';
const HEADER = 'whisper.cpp/include/whisper.h';
const BINDING = 'src/binding/transcribe.cc';
const COMMON = 'src/binding/common.h';
const MODEL = 'src/binding/model.cc';
const BUILD = 'dist/build.js';
const GGML = 'whisper.cpp/ggml/src/ggml.c';
const SGEMM = 'whisper.cpp/ggml/src/sgemm.cpp';

/** The per-model free-list of idle whisper_states (patch 3), added to the binding's common header. */
const STATE_POOL = `${TAG}: whisper_state reuse
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "whisper.h"

// Idle whisper_states of one loaded model. A transcription takes one (or creates one when none is
// idle) and gives it back when done, so the list never holds more states than the most
// transcriptions that ran at once on the model. Close() (the model is being freed) frees the idle
// ones; a state given back after that is freed instead of kept.
class StatePool {
   public:
    whisper_state *Acquire(whisper_context *context) {
        {
            std::lock_guard<std::mutex> lock(mutex);
            if (!idle.empty()) {
                whisper_state *state = idle.back();
                idle.pop_back();
                whisper_state_reset_for_reuse(state);
                return state;
            }
        }
        return whisper_init_state(context);
    }

    void Release(whisper_state *state) {
        {
            std::lock_guard<std::mutex> lock(mutex);
            if (!closed) {
                idle.push_back(state);
                return;
            }
        }
        whisper_free_state(state);
    }

    void Close() {
        std::vector<whisper_state *> states;
        {
            std::lock_guard<std::mutex> lock(mutex);
            closed = true;
            states.swap(idle);
        }
        for (auto state : states) whisper_free_state(state);
    }

    // The pool of a loaded context (created on first use). A context freed and another loaded at
    // the same address get different pools: Forget() unregisters the old one.
    static std::shared_ptr<StatePool> Of(whisper_context *context) {
        std::lock_guard<std::mutex> lock(RegistryMutex());
        auto &pool = Registry()[context];
        if (!pool) pool = std::make_shared<StatePool>();
        return pool;
    }

    // Called before the context is freed; transcriptions still running keep the pool alive.
    static void Forget(whisper_context *context) {
        std::shared_ptr<StatePool> pool;
        {
            std::lock_guard<std::mutex> lock(RegistryMutex());
            auto it = Registry().find(context);
            if (it == Registry().end()) return;
            pool = it->second;
            Registry().erase(it);
        }
        pool->Close();
    }

   private:
    std::mutex                    mutex;
    std::vector<whisper_state *>  idle;
    bool                          closed = false;

    // never destroyed: a model finalized while the process exits must not find them gone
    static std::mutex &RegistryMutex() {
        static auto *m = new std::mutex();
        return *m;
    }
    static std::unordered_map<whisper_context *, std::shared_ptr<StatePool>> &Registry() {
        static auto *r = new std::unordered_map<whisper_context *, std::shared_ptr<StatePool>>();
        return *r;
    }
};
`;

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
    file: WHISPER,
    find: 'void whisper_reset_timings(struct whisper_context * ctx) {',
    replace: `// ${TAG}: a state taken back from the binding's free-list starts like a fresh one from
// whisper_init_state. whisper_full_with_state itself clears result_all, recomputes the mel, the
// energy and token-timestamp cursors (when used), exp_n_audio_ctx, the KV caches' use and decoders
// 1..n (rng included), but keeps prompt_past (unless no_context), decoder 0's rng (sampling at
// t > 0), lang_id (English-only model, language given), the timings and our no_speech_prob.
void whisper_state_reset_for_reuse(struct whisper_state * state) {
    state->prompt_past.clear();
    state->decoders[0].rng = std::mt19937(0);
    state->lang_id = 0;
    state->no_speech_prob = 0.0f;
    state->t_sample_us = state->t_encode_us = state->t_decode_us = 0;
    state->t_batchd_us = state->t_prompt_us = state->t_mel_us = 0;
    state->n_sample = state->n_encode = state->n_decode = state->n_batchd = state->n_prompt = 0;
    state->n_fail_p = state->n_fail_h = 0;
}

void whisper_reset_timings(struct whisper_context * ctx) {`,
  },
  {
    file: HEADER,
    find: '    WHISPER_API void whisper_free_state(struct whisper_state * state);',
    replace: `    WHISPER_API void whisper_free_state(struct whisper_state * state);
    WHISPER_API void whisper_state_reset_for_reuse(struct whisper_state * state); ${TAG}`,
  },
  {
    file: COMMON,
    find: 'bool IsProduction(const Napi::Object global_env);\n',
    replace: `bool IsProduction(const Napi::Object global_env);\n\n${STATE_POOL}`,
  },
  {
    file: BINDING,
    find: `        if (state != nullptr) {
            whisper_free_state(state);
        }`,
    replace: `        if (state != nullptr) {
            if (reusable) pool->Release(state); ${TAG}: back to the model's free-list
            else whisper_free_state(state);
        }`,
  },
  {
    file: BINDING,
    find: '        state = whisper_init_state(context);\n',
    replace: `        state = pool->Acquire(context); ${TAG}: an idle state of this model, or a new one
        if (state == nullptr) {
            SetError("whisper_init_state failed");
            return;
        }
`,
  },
  {
    file: BINDING,
    find: `        int err = whisper_full_with_state(context, state, params, samples, n_samples);
        if (err != 0) {
            SetError("whisper_full operation failed");
        }`,
    replace: `        int err = whisper_full_with_state(context, state, params, samples, n_samples);
        if (err != 0) {
            SetError("whisper_full operation failed");
            reusable = false; ${TAG}: a state a call failed on is freed, not reused
        }`,
  },
  {
    file: BINDING,
    find: '        this->progress_callback.Reset(progress_callback, 1);\n        state = nullptr;\n',
    replace: `        this->progress_callback.Reset(progress_callback, 1);\n        state = nullptr;\n        pool = StatePool::Of(context); ${TAG}\n`,
  },
  {
    file: BINDING,
    find: '    whisper_state*                         state;\n',
    replace: `    whisper_state*                         state;\n    std::shared_ptr<StatePool>             pool; ${TAG}\n    bool                                   reusable = true; ${TAG}\n`,
  },
  {
    file: MODEL,
    find: '        auto worker = new FreeModelWorker(env, context);\n',
    replace: `        StatePool::Forget(context); ${TAG}: the model's idle whisper_states go with it\n        auto worker = new FreeModelWorker(env, context);\n`,
  },
  {
    file: MODEL,
    find: '    if (context != nullptr) {\n        whisper_free(context);\n        context = nullptr;\n    }',
    replace: `    if (context != nullptr) {\n        StatePool::Forget(context); ${TAG}\n        whisper_free(context);\n        context = nullptr;\n    }`,
  },
  {
    file: BUILD,
    find: `      "whisper.cpp/ggml/src/ggml-aarch64.c"
    ],
    defines: [],`,
    replace: `      "whisper.cpp/ggml/src/ggml-aarch64.c",
      "whisper.cpp/ggml/src/sgemm.cpp" ${TAG}: llamafile's tinyBLAS
    ],
    defines: ["GGML_USE_LLAMAFILE"],`,
  },
  {
    file: GGML,
    find: '#include <llamafile/sgemm.h>\n',
    replace: `#include "sgemm.h" ${TAG}: vendored beside this file\n`,
  },
  {
    file: SGEMM,
    find: '#include "ggml-impl.h"\n',
    replace: `#include "ggml-cpu-impl.h" ${TAG}: the FP16 macros and SIMD headers moved there\n`,
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

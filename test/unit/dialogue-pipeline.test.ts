/** DialogueService's own logic with scripted engines: prompts by modality, history window, no speech, interrupted turns, TTS order. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { probeFfmpeg } from '../../src/audio/ffmpeg.ts';
import { loadConfig } from '../../src/config.ts';
import { DialogueService, type DialogueEvent } from '../../src/dialogue/pipeline.ts';
import { loadPrompts } from '../../src/dialogue/prompts.ts';
import type { ChatMessage, GenerationParams, LlmEngine, LlmEvent, LlmInput } from '../../src/engines/llm/types.ts';
import { EngineRegistry } from '../../src/engines/registry.ts';
import type { SttEngine, SttEvent } from '../../src/engines/stt/types.ts';
import type { PcmChunk, SynthesisRequest, TtsEngine } from '../../src/engines/tts/types.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { GenerationService } from '../../src/services/generation.ts';
import { SynthesisService } from '../../src/services/synthesis.ts';
import { TranscriptionService } from '../../src/services/transcription.ts';
import { historyWindow } from '../../src/sessions/index.ts';
import { MemorySessionStore } from '../../src/sessions/memory-store.ts';

const ready = { status: 'ready' as const };

class ScriptedLlm implements LlmEngine {
  readonly id = 'scripted-llm';
  readonly capability = 'llm' as const;
  readonly modelName = 'scripted';
  calls: ChatMessage[][] = [];
  constructor(private readonly reply: string[], private readonly delayMs = 0) {}
  async load() {}
  state() {
    return ready;
  }
  async close() {}
  async *generate(input: LlmInput, _params: GenerationParams, signal: AbortSignal): AsyncIterable<LlmEvent> {
    if (input.kind === 'chat') this.calls.push(input.messages);
    for (const piece of this.reply) {
      signal.throwIfAborted();
      if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
      yield { type: 'delta', text: piece };
    }
    yield { type: 'done', result: { text: this.reply.join(''), finishReason: 'stop', usage: { promptTokens: 3, completionTokens: this.reply.length }, model: 'scripted' } };
  }
}

class ScriptedStt implements SttEngine {
  readonly id = 'scripted-stt';
  readonly capability = 'stt' as const;
  constructor(private readonly text: string) {}
  async load() {}
  state() {
    return ready;
  }
  async close() {}
  async *transcribe(): AsyncIterable<SttEvent> {
    yield { type: 'done', transcript: { text: this.text, language: 'en', duration: 1, segments: [] } };
  }
}

/** Speaks each sentence as `length` samples of value = sentence length (so order is visible), or fails. */
class ScriptedTts implements TtsEngine {
  readonly id = 'scripted-tts';
  readonly capability = 'tts' as const;
  said: string[] = [];
  constructor(private readonly fail = false) {}
  async load() {}
  state() {
    return ready;
  }
  async close() {}
  speaksAt() {
    return true;
  }
  async voices() {
    return [];
  }
  async *synthesize(request: SynthesisRequest): AsyncIterable<PcmChunk> {
    if (this.fail) throw new Error('speaker on fire');
    this.said.push(request.text);
    yield { samples: new Int16Array(160).fill(request.text.length), sampleRate: 16000 };
  }
}

function setup(options: { reply?: string[]; heard?: string; ttsFails?: boolean; llmDelayMs?: number; env?: Record<string, string> } = {}) {
  const config = loadConfig({ DEFAULT_AUDIO_SAMPLE_RATE: '16000', ...options.env });
  const llm = new ScriptedLlm(options.reply ?? ['Hello there. ', 'How are ', 'you today?'], options.llmDelayMs);
  const tts = new ScriptedTts(options.ttsFails);
  const metrics = new Metrics();
  const engines = new EngineRegistry({ llm: [llm], stt: [new ScriptedStt(options.heard ?? 'what was said')], tts: [tts] }, metrics);
  const sessions = new MemorySessionStore({ maxSessions: 10, ttlSeconds: 60, maxStoredTurns: 100 });
  const dialogue = new DialogueService(config, {
    transcription: new TranscriptionService(config, engines, metrics),
    generation: new GenerationService(config, engines, metrics),
    synthesis: new SynthesisService(config, engines, metrics, probeFfmpeg('/nonexistent/ffmpeg')),
    sessions,
    metrics,
    prompts: loadPrompts(config),
  });
  return { dialogue, llm, tts, sessions, config };
}

async function collect(events: AsyncIterable<DialogueEvent>): Promise<DialogueEvent[]> {
  const out: DialogueEvent[] = [];
  for await (const e of events) out.push(e);
  return out;
}

const audioIn = { samples: new Float32Array(16000), duration: 1, source: { container: 'wav', bytes: 100, sampleRate: 16000, channels: 1 } };

describe('DialogueService', () => {
  it('speaks sentence by sentence, in order, and the reply text is complete', async () => {
    const { dialogue, tts } = setup();
    const turn = await dialogue.start({ text: 'hi', modalities: { text: true, audio: true }, format: 'pcm' }, new AbortController().signal);
    const events = await collect(turn.events);
    assert.deepEqual(tts.said, ['Hello there.', 'How are you today?']);
    const audio = Buffer.concat(events.flatMap((e) => (e.type === 'audio.delta' ? [e.audio] : [])));
    const samples = new Int16Array(audio.buffer, audio.byteOffset, audio.length / 2);
    assert.deepEqual([samples[0], samples.at(-1)], ['Hello there.'.length, 'How are you today?'.length], 'audio in sentence order');
    const done = events.at(-1)!;
    assert.equal(done.type, 'done');
    if (done.type === 'done') {
      assert.equal(done.result.reply_text, 'Hello there. How are you today?');
      assert.equal(done.result.engines.tts, 'scripted-tts');
      assert.equal(done.result.audio!.duration_seconds, 0.02);
    }
  });

  it('uses the voice prompt for spoken replies and the text prompt otherwise, then history, then the user', async () => {
    const { dialogue, llm, config } = setup();
    await collect((await dialogue.start({ text: 'first', sessionId: 's', modalities: { text: true, audio: true }, format: 'pcm' }, new AbortController().signal)).events);
    await collect((await dialogue.start({ text: 'second', sessionId: 's', modalities: { text: true, audio: false }, format: 'pcm' }, new AbortController().signal)).events);
    assert.equal(llm.calls[0]![0]!.content, `${config.DIALOGUE_SYSTEM_PROMPT}\n\n${config.DIALOGUE_VOICE_PROMPT}`);
    assert.deepEqual(
      llm.calls[1]!.map((m) => [m.role, m.content]),
      [
        ['system', `${config.DIALOGUE_SYSTEM_PROMPT}\n\n${config.DIALOGUE_TEXT_PROMPT}`],
        ['user', 'first'],
        ['assistant', 'Hello there. How are you today?'],
        ['user', 'second'],
      ],
    );
  });

  it('no speech in the audio: says so, never asks the model, stores nothing', async () => {
    const { dialogue, llm, sessions } = setup({ heard: '  ' });
    const turn = await dialogue.start({ audio: audioIn, sessionId: 'quiet', modalities: { text: true, audio: true }, format: 'pcm' }, new AbortController().signal);
    const events = await collect(turn.events);
    assert.deepEqual(events.map((e) => e.type), ['transcript', 'done']);
    const done = events[1]!;
    assert.ok(done.type === 'done' && done.result.no_speech);
    assert.equal(llm.calls.length, 0);
    assert.deepEqual(await sessions.history({ owner: undefined, id: 'quiet' }), []);
  });

  it('TTS failing degrades the turn to text', async () => {
    const { dialogue } = setup({ ttsFails: true });
    const events = await collect((await dialogue.start({ text: 'hi', modalities: { text: true, audio: true }, format: 'pcm' }, new AbortController().signal)).events);
    const done = events.at(-1)!;
    assert.ok(done.type === 'done');
    if (done.type === 'done') {
      assert.equal(done.result.reply_text, 'Hello there. How are you today?');
      assert.equal(done.result.audio, null);
      assert.deepEqual(done.result.degraded.map((d) => d.stage), ['tts']);
      assert.match(done.result.degraded[0]!.reason, /speaker on fire/);
    }
  });

  it('an aborted turn is stored with what was delivered, marked interrupted', async () => {
    const { dialogue, sessions } = setup({ reply: ['One. ', 'Two. ', 'Three. ', 'Four. ', 'Five.'], llmDelayMs: 30 });
    const controller = new AbortController();
    const turn = await dialogue.start({ text: 'count', sessionId: 'cut', modalities: { text: true, audio: false }, format: 'pcm' }, controller.signal);
    const seen: string[] = [];
    await assert.rejects(async () => {
      for await (const e of turn.events) {
        if (e.type === 'text.delta') seen.push(e.text);
        if (seen.length === 2) controller.abort(new DOMException('barge-in', 'AbortError'));
      }
    });
    await new Promise((r) => setTimeout(r, 20));
    const stored = await sessions.history({ owner: undefined, id: 'cut' });
    assert.equal(stored.length, 2);
    assert.equal(stored[1]!.interrupted, true);
    assert.equal(stored[1]!.content, 'One. Two. ');
  });

  it('a prompts file overrides the prompts', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'prompts-')), 'prompts.json');
    fs.writeFileSync(file, JSON.stringify({ system: 'You are a pirate.', voice: 'Say arr.' }));
    const prompts = loadPrompts(loadConfig({ DIALOGUE_PROMPTS_FILE: file }));
    assert.equal(prompts.system, 'You are a pirate.');
    assert.equal(prompts.voice, 'Say arr.');
    assert.equal(prompts.text, loadConfig({}).DIALOGUE_TEXT_PROMPT);
  });
});

describe('historyWindow', () => {
  const t = (role: 'user' | 'assistant', content: string) => ({ role, content, at: '' });
  const turns = [t('user', 'a'.repeat(40)), t('assistant', 'b'.repeat(40)), t('user', 'c'.repeat(40)), t('assistant', 'd'.repeat(40))];
  it('keeps the newest turns within the turn and token budgets, starting with a user turn', () => {
    assert.deepEqual(historyWindow(turns, 10, 1000), turns);
    assert.deepEqual(historyWindow(turns, 2, 1000), turns.slice(2));
    assert.deepEqual(historyWindow(turns, 3, 1000), turns.slice(2), 'never starts with an assistant turn');
    assert.deepEqual(historyWindow(turns, 10, 25), turns.slice(2), '40 chars ≈ 10 tokens each');
    assert.deepEqual(historyWindow(turns, 0, 1000), []);
  });
});

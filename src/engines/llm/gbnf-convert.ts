/**
 * JSON schema → GBNF grammar text with node-llama-cpp's own converter, without parsing the result.
 * `LlamaJsonSchemaGrammar` converts in its constructor and then hands the text to llama.cpp's parser
 * through `llama._bindings.AddonGrammar`; given a stand-in whose parser does nothing, it does only
 * the conversion (pure JS, so it can run in a worker thread: gbnf-worker.ts). The main thread then
 * parses the text with the real llama (`createGrammar`, with the same settings as the class).
 */
import type * as NodeLlamaCppModule from 'node-llama-cpp';

type JsonSchemaGrammarClass = typeof NodeLlamaCppModule.LlamaJsonSchemaGrammar;

const textOnly = { _bindings: { AddonGrammar: class {} } } as unknown as ConstructorParameters<JsonSchemaGrammarClass>[0];

export function schemaToGbnf(LlamaJsonSchemaGrammar: JsonSchemaGrammarClass, schema: unknown): string {
  return new LlamaJsonSchemaGrammar(textOnly, schema as ConstructorParameters<JsonSchemaGrammarClass>[1]).grammar;
}

/** What LlamaJsonSchemaGrammar passes to llama.cpp besides the text. */
export const JSON_SCHEMA_GRAMMAR_STOP = '\n'.repeat(4);

/**
 * Bounds on a `response_format` JSON schema, checked before any grammar is built, for every LLM
 * backend. The embedded engine turns the schema into GBNF text (node-llama-cpp's JS converter, in
 * a worker thread) that llama.cpp then parses natively — synchronously on the event loop, once
 * per grammar and again for every generation (`llama_sampler_init_grammar`), with no async or
 * cancellable variant. Both costs grow faster than the schema: measured on 2 cores, a 60,000-value
 * enum at the root takes ~5 s of native parsing, a chain of 2,000 `$ref`s ~2 s of JS (and 3,000
 * overflow the stack). Within the default bounds the native parse stays at tens of milliseconds.
 *
 * Both walks are iterative: a schema nested thousands of levels deep must get its 400, not a
 * stack overflow.
 */
import { ApiError } from '../../errors.ts';

export interface SchemaLimits {
  /** Largest schema, in bytes of its JSON. */
  maxBytes: number;
  /** Deepest nesting of objects and arrays. */
  maxDepth: number;
  /** Most `enum` values in one schema, all enums together. */
  maxEnumValues: number;
}

const DEFS_PREFIX = '#/$defs/'; // the only references node-llama-cpp resolves

const isNode = (value: unknown): value is object => typeof value === 'object' && value !== null;

/**
 * Throws a 400 `invalid_value` naming the limit and its variable when `schema` is too large, too
 * deep or has too many enum values; returns its serialization (the grammar cache key) otherwise.
 */
export function checkJsonSchema(schema: unknown, limits: SchemaLimits, param = 'response_format'): string {
  const what = 'response_format.json_schema.schema';
  const tooDeep = () => ApiError.badRequest(`${what} is nested more than ${limits.maxDepth} levels deep (objects and arrays, $refs followed); the limit is GRAMMAR_MAX_DEPTH.`, param);

  // 1. structure: depth and enum values, stopping at the first limit passed; collects $defs
  const defs = new Map<string, object[]>();
  let enumValues = 0;
  let refs = false;
  const stack: { node: object; depth: number }[] = isNode(schema) ? [{ node: schema, depth: 1 }] : [];
  while (stack.length > 0) {
    const { node, depth } = stack.pop()!;
    if (depth > limits.maxDepth) throw tooDeep();
    if (Array.isArray(node)) {
      for (const item of node) if (isNode(item)) stack.push({ node: item, depth: depth + 1 });
      continue;
    }
    for (const [key, value] of Object.entries(node)) {
      if (key === 'enum' && Array.isArray(value)) {
        enumValues += value.length;
        if (enumValues > limits.maxEnumValues) {
          throw ApiError.badRequest(`${what} has more than ${limits.maxEnumValues} enum values (all enums together); the limit is GRAMMAR_MAX_ENUM_VALUES.`, param);
        }
      }
      if (key === '$ref' && typeof value === 'string') refs = true;
      if (key === '$defs' && isNode(value) && !Array.isArray(value)) {
        for (const [name, def] of Object.entries(value)) if (isNode(def)) defs.set(name, [...(defs.get(name) ?? []), def]);
      }
      if (isNode(value)) stack.push({ node: value, depth: depth + 1 });
    }
  }

  // 2. size (safe to serialize now: the depth is bounded)
  const serialized = JSON.stringify(schema);
  const bytes = Buffer.byteLength(serialized);
  if (bytes > limits.maxBytes) throw ApiError.badRequest(`${what} is ${bytes} bytes; the limit is ${limits.maxBytes} (GRAMMAR_MAX_SCHEMA_BYTES).`, param);

  // 3. depth with $refs followed: a chain of definitions nests as deep as its length
  if (refs && isNode(schema) && refDepthExceeds(schema, defs, limits.maxDepth)) throw tooDeep();
  return serialized;
}

/**
 * Whether the longest path through the schema, following `$ref`s into their definitions, is
 * longer than `max` nodes. A depth-first walk with an explicit stack, each node's depth memoized;
 * a reference back into the current path (a recursive schema) adds nothing — node-llama-cpp
 * turns it into a grammar rule that refers to itself.
 */
function refDepthExceeds(root: object, defs: Map<string, object[]>, max: number): boolean {
  const children = (node: object): object[] => {
    const values: unknown[] = Array.isArray(node) ? node : Object.values(node);
    const out = values.filter(isNode);
    const ref = Array.isArray(node) ? undefined : (node as { $ref?: unknown }).$ref;
    if (typeof ref === 'string' && ref.startsWith(DEFS_PREFIX)) out.push(...(defs.get(ref.slice(DEFS_PREFIX.length)) ?? []));
    return out;
  };
  const depthOf = new Map<object, number>();
  const onPath = new Set<object>([root]);
  const path: { node: object; next: object[]; i: number; deepest: number }[] = [{ node: root, next: children(root), i: 0, deepest: 0 }];
  while (path.length > 0) {
    const top = path.at(-1)!;
    if (top.i < top.next.length) {
      const child = top.next[top.i++]!;
      const known = depthOf.get(child);
      if (known !== undefined) top.deepest = Math.max(top.deepest, known);
      else if (!onPath.has(child)) {
        if (path.length >= max) return true;
        onPath.add(child);
        path.push({ node: child, next: children(child), i: 0, deepest: 0 });
      }
      continue;
    }
    path.pop();
    onPath.delete(top.node);
    const depth = top.deepest + 1;
    if (depth > max) return true;
    depthOf.set(top.node, depth);
    const parent = path.at(-1);
    if (parent) parent.deepest = Math.max(parent.deepest, depth);
  }
  return false;
}

const JSON_TYPES = new Set(['string', 'number', 'integer', 'boolean', 'object', 'array', 'null']);

/**
 * What the embedded engine's grammar cannot honour, as a sentence, or undefined. node-llama-cpp
 * resolves only `#/$defs/<name>` references and, for anything it does not know (a `definitions`
 * reference — zod-to-json-schema's and Pydantic v1's default —, a remote or dangling `$ref`, a
 * made-up `type`), emits a grammar that accepts any value: the output would parse but not follow
 * the schema. Refusing is honest; the remote backend gets the schema as it is. Iterative (the depth
 * is bounded by `checkJsonSchema` first).
 */
export function grammarProblem(schema: unknown): string | undefined {
  const rootDefs = isNode(schema) && !Array.isArray(schema) ? (schema as { $defs?: unknown }).$defs : undefined;
  const defined = new Set(isNode(rootDefs) && !Array.isArray(rootDefs) ? Object.keys(rootDefs) : []);
  const stack: unknown[] = [schema];
  while (stack.length > 0) {
    const node = stack.pop();
    if (!isNode(node)) continue;
    if (Array.isArray(node)) {
      stack.push(...node);
      continue;
    }
    for (const [key, value] of Object.entries(node)) {
      if (key === '$ref' && typeof value === 'string') {
        if (value.startsWith('#/definitions/')) return `"$ref": "${value.slice(0, 100)}" — put definitions under "$defs" and refer to them as "#/$defs/<name>" (JSON Schema 2020-12).`;
        if (!value.startsWith(DEFS_PREFIX) || !defined.has(value.slice(DEFS_PREFIX.length))) return `"$ref": "${value.slice(0, 100)}" does not name a definition in the schema's "$defs"; only local "#/$defs/<name>" references are supported.`;
      }
      if (key === 'type' && (typeof value === 'string' || Array.isArray(value))) {
        const bad = [value].flat().find((t) => typeof t !== 'string' || !JSON_TYPES.has(t));
        if (bad !== undefined) return `"type": ${JSON.stringify(bad).slice(0, 100)} is not a JSON Schema type (string, number, integer, boolean, object, array, null).`;
      }
      if (key !== 'enum' && key !== 'const' && key !== 'default' && key !== 'examples') stack.push(value);
    }
  }
  return undefined;
}

/** llama.cpp's grammar parser refuses a repetition that expands to this many rules (MAX_REPETITION_THRESHOLD in llama-grammar.cpp), or past it silently stops enforcing it. */
export const LLAMA_MAX_REPETITION_RULES = 2000;

/** The largest single repetition accepted: an element of up to two rules fits 1,000 times. */
export const MAX_ONE_REPETITION = LLAMA_MAX_REPETITION_RULES / 2;

/**
 * The counts of a GBNF grammar's repetitions (`x{m}`, `x{m,}`, `x{m,n}`: the larger bound), one per
 * rule that has them, as llama.cpp expands them. String literals and character classes are
 * skipped: a property name or enum value may hold "{5}".
 */
export function* repetitions(grammar: string): Generator<number> {
  for (const [, min, comma, max] of grammar.matchAll(/"(?:[^"\\]|\\.)*"|\[(?:[^\]\\]|\\.)*\]|\{(\d+)(,?)(\d*)\}/g)) {
    if (min !== undefined) yield Math.max(Number(min), comma && max ? Number(max) : 0);
  }
}

/**
 * What llama.cpp would refuse or take too long over in a GBNF grammar's repetitions, as a
 * sentence, or undefined. Each repetition is expanded into one rule per repeat when a generation
 * starts (llama_sampler_init_grammar: per generation, synchronously, on the engine's thread —
 * other generations wait), ~1 µs each: 1,200 string properties with a maxLength near 1,500 each
 * cost 1.3 s per request. Bounded in all by `maxTotal` (GRAMMAR_MAX_REPETITIONS), and each by
 * MAX_ONE_REPETITION.
 */
export function repetitionProblem(grammar: string, maxTotal: number): string | undefined {
  let total = 0;
  for (const count of repetitions(grammar)) {
    if (count > MAX_ONE_REPETITION) {
      return `a maxLength, minLength, maxItems or minItems of ${count} is more than llama.cpp's grammar can enforce (${MAX_ONE_REPETITION.toLocaleString('en')}); lower it, or leave it out and check the length yourself.`;
    }
    total += count;
    if (total > maxTotal) {
      return `its maxLength, minLength, maxItems and minItems bounds add up to more than ${maxTotal.toLocaleString('en')} repetitions (GRAMMAR_MAX_REPETITIONS): llama.cpp expands each into a rule for every generation.`;
    }
  }
  return undefined;
}

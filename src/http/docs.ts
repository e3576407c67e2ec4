/**
 * The OpenAPI 3.1 document (generated from the zod schemas by @fastify/swagger) and the Scalar
 * reference at /docs, served fully offline (bundled JS, no fonts, telemetry or agent features).
 */
import swagger from '@fastify/swagger';
import scalar from '@scalar/fastify-api-reference';
import type { FastifyInstance } from 'fastify';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';
import { wsIntroduction, wsOperations, type WsDocs } from './ws-docs.ts';

export const DOCS_PREFIX = '/docs';

const DESCRIPTION = `Self-hosted speech + language API: Gemma 3 text generation, Whisper speech-to-text,
OpenAudio (fish-speech) text-to-speech and voice dialogue, with OpenAI-compatible routes.

**Authentication.** When API keys are enabled, send the key in the \`X-API-Key\` header (the name is
configurable with \`API_KEY_HEADER_NAME\`) or as \`Authorization: Bearer <key>\` (what the OpenAI SDKs
send). WebSocket handshakes also accept \`?api_key=<key>\` or the subprotocol \`api_key.<key>\`
(offer \`gemma-3-api\` beside it; the server selects that one). \`/health\`, \`/health/ready\` are always
open; \`/metrics\` and \`/docs\` are open unless \`METRICS_REQUIRE_API_KEY\` / \`DOCS_REQUIRE_API_KEY\`.

**Errors.** Every error uses one envelope:
\`{"error":{"message","type","param","code"},"request_id"}\`, the OpenAI shape, so the OpenAI SDKs
raise typed errors. Every response carries the request id in the \`X-Request-ID\` header.`;

type TransformInput = Parameters<typeof jsonSchemaTransform>[0];

/**
 * jsonSchemaTransform, plus bodies given per content type (`body: {content: {type: {schema}}}`,
 * which Fastify validates by the request's content type but the zod transform does not convert).
 */
function transformWithBodyContent(document: TransformInput): ReturnType<typeof jsonSchemaTransform> {
  const body = (document.schema as { body?: unknown } | undefined)?.body as { content?: Record<string, { schema: unknown }> } | undefined;
  if (!body?.content) return jsonSchemaTransform(document);
  const rest = jsonSchemaTransform({ ...document, schema: { ...document.schema, body: undefined } });
  const content = Object.fromEntries(
    Object.entries(body.content).map(([type, { schema }]) => [type, { schema: (jsonSchemaTransform({ ...document, schema: { body: schema } }).schema as { body: unknown }).body }]),
  );
  return { ...rest, schema: { ...rest.schema, body: { content } } };
}

export async function registerOpenApi(app: FastifyInstance, version: string, wsDocs: WsDocs): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'gemma-3-api', version, description: DESCRIPTION, license: { name: 'MIT', identifier: 'MIT' } },
      // A relative server resolves against the page that shows the document, so /docs' "Test Request"
      // calls the service that served it, on whichever port (BROWSER_PORT) or proxy it was opened.
      servers: [
        { url: '/', description: 'This service (the origin this document was loaded from)' },
        { url: 'http://localhost:6666', description: 'Local service, API port (for clients other than browsers)' },
      ],
      tags: [
        { name: 'health', description: 'Liveness and readiness (no API key needed)' },
        { name: 'generation', description: 'Text generation with Gemma 3' },
        { name: 'openai', description: 'OpenAI-compatible text routes (official SDKs work unchanged)' },
        { name: 'speech-to-text', description: 'Whisper transcription and translation (also the OpenAI-compatible `/v1/audio/transcriptions`, `/v1/audio/translations`)' },
        { name: 'text-to-speech', description: 'Speech synthesis and voices (also the OpenAI-compatible `/v1/audio/speech`)' },
        { name: 'dialogue', description: 'Voice dialogue: speech in, spoken reply out, with session memory' },
        { name: 'operations', description: 'Metrics' },
      ],
      components: {
        securitySchemes: {
          apiKeyHeader: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
          bearer: { type: 'http', scheme: 'bearer' },
        },
      },
      security: [{ apiKeyHeader: [] }, { bearer: [] }],
    },
    transform: (input) => {
      const output = transformWithBodyContent(input);
      // routes served without a key (health, and /metrics unless METRICS_REQUIRE_API_KEY) say so
      if (input.route.config?.public === true) return { ...output, schema: { ...output.schema, security: [] } };
      return output;
    },
    transformObject: (input) => {
      const document = jsonSchemaTransformObject(input) as { paths?: Record<string, unknown>; info?: { description?: string } };
      // WebSockets cannot be tried from the reference: their protocol is prose in the introduction,
      // and their paths stay in the document for tools, hidden from the reference's request client
      return {
        ...document,
        info: { ...document.info, description: `${document.info?.description ?? ''}\n\n${wsIntroduction(wsDocs)}` },
        paths: { ...document.paths, ...wsOperations(wsDocs) },
      } as ReturnType<typeof jsonSchemaTransformObject>;
    },
  });
}

export async function registerDocsUi(app: FastifyInstance): Promise<void> {
  await app.register(async (scope) => {
    // the reference's HTML has no `lang`: screen readers and translators need it
    scope.addHook('onSend', async (_request, reply, payload) => {
      if (typeof payload !== 'string' || !String(reply.getHeader('content-type') ?? '').startsWith('text/html')) return payload;
      return payload.replace(/<html>/i, '<html lang="en">');
    });
    await registerScalar(scope);
  });
}

async function registerScalar(app: FastifyInstance): Promise<void> {
  await app.register(scalar, {
    routePrefix: DOCS_PREFIX,
    configuration: {
      title: 'gemma-3-api reference',
      pageTitle: 'gemma-3-api · API reference',
      withDefaultFonts: false,
      telemetry: false,
      agent: { disabled: true },
      mcp: { disabled: true },
      showDeveloperTools: 'never',
      proxyUrl: '',
    } as Record<string, unknown>,
  });
}

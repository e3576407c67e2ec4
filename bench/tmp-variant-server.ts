import Fastify from 'fastify';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { randomUUID } from 'node:crypto';
const v = process.env.VARIANT!;
const app = Fastify({ logger: false, genReqId: v >= 'B' ? () => randomUUID() : undefined }).withTypeProvider<ZodTypeProvider>();
if (v >= 'B') app.addHook('onRequest', async (req, reply) => { reply.header('X-Request-ID', req.id); });
if (v >= 'C') { app.setValidatorCompiler(validatorCompiler); app.setSerializerCompiler(serializerCompiler); }
if (v >= 'D') { const { Histogram, Registry } = await import('prom-client'); const h = new Histogram({ name: 'x', help: 'x', labelNames: ['method','route','status_code'], registers: [new Registry()] }); app.addHook('onResponse', async (req, reply) => { h.observe({ method: req.method, route: req.routeOptions.url ?? 'u', status_code: String(reply.statusCode) }, reply.elapsedTime / 1000); }); }
app.get('/health', v >= 'C' ? { schema: { response: { 200: z.object({ status: z.literal('ok') }) } } } : {}, async () => ({ status: 'ok' as const }));
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' });

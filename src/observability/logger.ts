/**
 * pino, configured so secrets never reach a log line: requests are logged by our own hook (method,
 * route template, status, latency) instead of Fastify's serializer, URLs lose their `api_key`
 * query value, and any header/key field that slips into a log object is redacted.
 */
import { pino, type DestinationStream, type Logger } from 'pino';

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'headers.authorization',
  'headers["x-api-key"]',
  'authorization',
  'apiKey',
  'api_key',
  '*.apiKey',
  '*.api_key',
  'audio',
  '*.audio',
  'audio_base64',
  '*.audio_base64',
];

/** `/ws/stt?api_key=secret&x=1` → `/ws/stt?api_key=[REDACTED]&x=1` */
export function redactUrl(url: string): string {
  return url.replace(/([?&](?:api_key|apikey|key|token)=)[^&#]*/gi, '$1[REDACTED]');
}

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'gemma-3-api' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
      serializers: {
        req: (req: { method?: string; url?: string }) => ({ method: req.method, url: redactUrl(req.url ?? '') }),
        res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
      },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

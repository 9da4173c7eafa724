import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';

export const TELEMETRY_PATH = '/v1/telemetry';

function tooLarge(limit: number): Error {
  return Object.assign(new Error(`telemetry body exceeds ${limit} bytes: send smaller batches`), { statusCode: 413, code: 'E_BODY_TOO_LARGE' });
}

/**
 * POST /v1/telemetry bodies are capped below Fastify's global limit: a declared
 * Content-Length beyond it is refused before reading, a chunked body as soon as
 * it grows past it (bodies are small: reading them here first costs nothing).
 */
export function registerTelemetryBodyLimit(fastify: FastifyInstance, limit: number): void {
  fastify.addHook('preParsing', async (request, _reply, payload) => {
    if (request.url.split('?', 1)[0] !== TELEMETRY_PATH) return payload;
    const declared = Number(request.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of payload) {
      const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
      size += buf.length;
      if (size > limit) throw tooLarge(limit);
      chunks.push(buf);
    }
    const raw = Buffer.concat(chunks);
    const replay = Readable.from([raw], { objectMode: false }) as Readable & { receivedEncodedLength?: number };
    replay.receivedEncodedLength = raw.length;
    return replay;
  });
}

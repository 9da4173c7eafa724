import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Readable } from 'node:stream';

export const WEBHOOK_PATH_PREFIX = '/v1/webhooks/';
/** GitHub caps payloads at 25 MB but tag pushes and releases are a few KiB. */
export const WEBHOOK_MAX_BODY_BYTES = 1024 * 1024;

const rawBodies = new WeakMap<object, Buffer>();

/** The exact bytes a webhook request carried (signatures are over these, not over re-serialized JSON). */
export function rawBodyOf(request: FastifyRequest): Buffer | undefined {
  return rawBodies.get(request.raw);
}

function tooLarge(): Error {
  return Object.assign(new Error(`webhook body exceeds ${WEBHOOK_MAX_BODY_BYTES} bytes`), { statusCode: 413, code: 'E_BODY_TOO_LARGE' });
}

/**
 * Keeps the raw body of webhook requests: a preParsing hook reads it (at most
 * 1 MiB, else 413), remembers it and hands the same bytes to the normal parser.
 * Other routes are untouched (uploads stay streamed).
 */
export function registerWebhookRawBody(fastify: FastifyInstance): void {
  fastify.addHook('preParsing', async (request, _reply, payload) => {
    if (!request.url.startsWith(WEBHOOK_PATH_PREFIX)) return payload;
    const declared = Number(request.headers['content-length']);
    if (Number.isFinite(declared) && declared > WEBHOOK_MAX_BODY_BYTES) throw tooLarge();
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of payload) {
      const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
      size += buf.length;
      if (size > WEBHOOK_MAX_BODY_BYTES) throw tooLarge();
      chunks.push(buf);
    }
    const raw = Buffer.concat(chunks);
    rawBodies.set(request.raw, raw);
    const replay = Readable.from([raw], { objectMode: false }) as Readable & { receivedEncodedLength?: number };
    replay.receivedEncodedLength = raw.length;
    return replay;
  });
  // GitHub's form encoding ("payload=<json>") needs no parser here: Nest registers one, and the service reads the raw body.
}

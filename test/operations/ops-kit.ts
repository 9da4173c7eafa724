/**
 * Shared by the operations tests: an SSE client over real HTTP, the tiny and the
 * slow test models, and a worker started in this process on the test farm.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { pino } from 'pino';
import type { AppConfig } from '../../libs/config/index.js';
import { startWorker, type WorkerHandle } from '../../apps/worker/src/index.js';
import { tinyConvNet } from '../helpers/onnx-builder.js';

export interface SseEvent {
  id?: string;
  event: string;
  data: any;
}

export interface SseStream {
  status: number;
  headers: http.IncomingHttpHeaders;
  events: SseEvent[];
  comments: string[];
  /** Resolves when the server ends the stream. */
  closed: Promise<void>;
  waitFor(what: string, predicate: (e: SseEvent) => boolean, timeoutMs?: number): Promise<SseEvent>;
  close(): void;
}

/** GET an SSE endpoint and parse events as they come (text/event-stream framing). */
export function openSse(baseUrl: string, path: string, apiKey?: string): Promise<SseStream> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(path, baseUrl), { headers: { accept: 'text/event-stream', ...(apiKey && { authorization: `Bearer ${apiKey}` }) }, agent: false }, (res) => {
      const events: SseEvent[] = [];
      const comments: string[] = [];
      const waiters: { predicate: (e: SseEvent) => boolean; resolve: (e: SseEvent) => void }[] = [];
      let buffer = '';
      let closedResolve!: () => void;
      const closed = new Promise<void>((r) => (closedResolve = r));
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let idx: number;
        while ((idx = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, idx);
          buffer = buffer.slice(idx + 2);
          const event: SseEvent = { event: 'message', data: '' };
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) comments.push(line.slice(1).trim());
            else if (line.startsWith('event: ')) event.event = line.slice(7);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
            else if (line.startsWith('id: ')) event.id = line.slice(4);
          }
          if (!data.length) continue;
          try {
            event.data = JSON.parse(data.join('\n'));
          } catch {
            event.data = data.join('\n');
          }
          events.push(event);
          for (const w of [...waiters]) {
            if (w.predicate(event)) {
              waiters.splice(waiters.indexOf(w), 1);
              w.resolve(event);
            }
          }
        }
      });
      res.on('end', () => closedResolve());
      res.on('close', () => closedResolve());
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        events,
        comments,
        closed,
        waitFor(what, predicate, timeoutMs = 60_000) {
          const found = events.find(predicate);
          if (found) return Promise.resolve(found);
          return new Promise((resolveWait, rejectWait) => {
            const timer = setTimeout(
              () => rejectWait(new Error(`timed out waiting for ${what}; events so far: ${events.map((e) => `${e.event}:${e.data?.kind ?? e.data?.status ?? ''}:${e.data?.stage ?? ''}`).join(' ')}`)),
              timeoutMs,
            );
            waiters.push({
              predicate,
              resolve: (e) => {
                clearTimeout(timer);
                resolveWait(e);
              },
            });
          });
        },
        close: () => req.destroy(),
      });
    });
    req.on('error', reject);
    req.end();
  });
}

export function tinyModel(): Buffer {
  return tinyConvNet();
}

/** A whole VGG-19 (weights made by ConstantOfShape): several seconds of optimizer work, long enough to cancel. */
export function slowModel(): Buffer {
  return readFileSync(new URL('../../../../shared/onnx-conformance/light/light_vgg19.onnx', import.meta.url));
}

/** A worker in this process on the test farm; quiet unless PLANFORGE_TEST_LOGS is set. */
export function startTestWorker(config: AppConfig, targets: string[], id: string, extra: Partial<AppConfig['worker']> = {}): Promise<WorkerHandle> {
  return startWorker(
    { ...config, worker: { ...config.worker, targets: targets as AppConfig['worker']['targets'], id, ...extra } },
    { logger: pino({ level: process.env.PLANFORGE_TEST_LOGS ? 'info' : 'silent' }), heartbeatMs: 500 },
  );
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

import { Injectable, Logger, type BeforeApplicationShutdown } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { TERMINAL_BUILD_STATUSES, buildEventsChannel, type BuildEvent } from '../../../../libs/contracts/index.js';
import type { BuildStatusDto } from '../dto/build.dto.js';
import { BuildService } from '../services/build.service.js';
import { OperationsRedisRepository } from './operations-redis.repository.js';

/** A comment line keeps proxies and clients from timing the stream out. */
export const SSE_HEARTBEAT_MS = 15_000;
/** Missed pub/sub messages cannot leave a stream open forever: the registry is checked this often. */
const STATE_POLL_MS = 5_000;

interface OpenStream {
  end(reason: string): void;
}

/**
 * GET /v1/builds/:id/events as Server-Sent Events. The registry's state comes
 * first (`snapshot`), so a late subscriber catches up; then every `target` and
 * `build` event the workers and the API publish on the build's channel; a
 * terminal build state sends a final `snapshot` and `end`, and the stream closes.
 * Subscribing happens before the snapshot is read: nothing falls in between.
 */
@Injectable()
export class BuildEventsService implements BeforeApplicationShutdown {
  private readonly logger = new Logger('BuildEvents');
  private readonly streams = new Set<OpenStream>();

  constructor(
    private readonly builds: BuildService,
    private readonly redis: OperationsRedisRepository,
  ) {}

  /** Throws (404/400) before anything is written when the build is unknown. */
  async stream(buildId: string, base: string, request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const first = await this.builds.get(buildId, base);
    const raw = reply.raw;
    const pending: BuildEvent[] = [];
    let ready = false;
    let ended = false;
    let eventId = 0;
    let unsubscribe: () => void = () => undefined;
    const timers: NodeJS.Timeout[] = [];

    const write = (event: string, data: unknown) => {
      if (ended) return;
      raw.write(`id: ${++eventId}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    const stream: OpenStream = {
      end: (reason: string) => {
        if (ended) return;
        write('end', { reason });
        ended = true;
        timers.forEach(clearInterval);
        unsubscribe();
        this.streams.delete(stream);
        raw.end();
      },
    };
    const finish = async () => {
      try {
        write('snapshot', await this.builds.get(buildId, base));
      } catch (err) {
        this.logger.warn(`build ${buildId}: final snapshot failed: ${(err as Error).message}`);
      }
      stream.end('finished');
    };
    const deliver = (event: BuildEvent) => {
      if (event.type === 'target') write('target', event);
      else {
        write('build', event);
        if (TERMINAL_BUILD_STATUSES.includes(event.status)) void finish();
      }
    };

    unsubscribe = await this.redis.subscribe(buildEventsChannel(this.redis.farm, buildId), (message) => {
      let event: BuildEvent;
      try {
        event = JSON.parse(message) as BuildEvent;
      } catch {
        return;
      }
      if (ready) deliver(event);
      else pending.push(event);
    });

    reply.hijack();
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      // nginx and friends must not buffer the stream.
      'x-accel-buffering': 'no',
      'x-request-id': String(request.id),
    });
    raw.write(`retry: 3000\n\n`);
    this.streams.add(stream);
    // The response closes when the client goes away (or when the stream ends).
    raw.on('close', () => stream.end('client closed'));

    let snapshot: BuildStatusDto;
    try {
      snapshot = await this.builds.get(buildId, base);
    } catch {
      snapshot = first;
    }
    write('snapshot', snapshot);
    if (TERMINAL_BUILD_STATUSES.includes(snapshot.status)) {
      stream.end('finished');
      return;
    }
    ready = true;
    for (const event of pending.splice(0)) deliver(event);
    timers.push(setInterval(() => !ended && raw.write(`: heartbeat ${new Date().toISOString()}\n\n`), SSE_HEARTBEAT_MS));
    timers.push(
      setInterval(() => {
        this.builds.get(buildId, base).then(
          (state) => {
            if (TERMINAL_BUILD_STATUSES.includes(state.status)) void finish();
          },
          () => undefined,
        );
      }, STATE_POLL_MS),
    );
  }

  /** Open streams would keep the server from closing: end them first. */
  beforeApplicationShutdown(): void {
    for (const stream of [...this.streams]) stream.end('server shutting down');
  }
}

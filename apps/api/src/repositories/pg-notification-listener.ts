import type { Logger } from '@nestjs/common';
import pg from 'pg';

const RECONNECT_MS = 1_000;

export interface PgNotificationListenerOptions {
  databaseUrl: string;
  /** LISTEN channel (an identifier: letters, digits, underscores). */
  channel: string;
  /** Shows up in pg_stat_activity (tests terminate the listener by it). */
  applicationName: string;
  /** On every notification, and whenever listening starts or stops (anything may have changed unheard). */
  onChange(): void;
  logger: Logger;
  /** Ends "… listener lost: <why>; <consequence>" in the log. */
  whileDown: string;
}

/**
 * One Postgres connection that LISTENs to a channel and reconnects (every second)
 * when it is lost. Caches that are dropped on NOTIFY use it: they may serve from
 * memory only while `listening` is true, because a notification sent while the
 * connection is down is never delivered.
 */
export class PgNotificationListener {
  private client: pg.Client | null = null;
  private up = false;
  private closed = false;
  private reconnectTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: PgNotificationListenerOptions) {
    if (!/^[a-z_][a-z0-9_]*$/i.test(opts.channel)) throw new Error(`not a LISTEN channel name: ${opts.channel}`);
  }

  get listening(): boolean {
    return this.up;
  }

  /** Connects; a failure is not thrown: the listener keeps trying in the background. */
  async start(): Promise<void> {
    await this.connect().catch(() => this.scheduleReconnect());
  }

  async close(): Promise<void> {
    this.closed = true;
    this.up = false;
    clearTimeout(this.reconnectTimer);
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client({ connectionString: this.opts.databaseUrl, application_name: this.opts.applicationName });
    client.on('notification', () => this.opts.onChange());
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client));
    this.client = client;
    await client.connect();
    await client.query(`LISTEN ${this.opts.channel}`);
    if (this.closed || this.client !== client) {
      await client.end().catch(() => undefined);
      return;
    }
    // Anything changed while nobody listened is dropped with the rest.
    this.opts.onChange();
    this.up = true;
  }

  private lost(client: pg.Client, err?: Error): void {
    if (this.client !== client) return;
    this.up = false;
    this.opts.onChange();
    this.client = null;
    client.end().catch(() => undefined);
    if (this.closed) return;
    this.opts.logger.warn(`${this.opts.channel} listener lost${err ? `: ${err.message}` : ''}; ${this.opts.whileDown}`);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connect().catch((err: Error) => {
        if (this.client) this.lost(this.client, err);
        else this.scheduleReconnect();
      });
    }, RECONNECT_MS);
    this.reconnectTimer.unref();
  }
}

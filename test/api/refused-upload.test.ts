/**
 * An upload refused from its headers (here 401: no API key) while the client is still sending
 * the body. The answer must reach the client: the server must not reset a socket that still
 * receives the body (a RST can destroy the response before the client reads it, which is how a
 * CLI upload once saw EPIPE instead of 403). Raw sockets, so every byte and close is visible.
 */
import net from 'node:net';
import { cleanupTestConfig } from '../helpers/env.js';
import { startApi, type ApiUnderTest } from './api-test-kit.js';

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** A socket that collects what it receives and parses one HTTP response at a time. */
class RawClient {
  readonly socket: net.Socket;
  private received = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  ended = false;
  error: NodeJS.ErrnoException | undefined;

  constructor(port: number) {
    // allowHalfOpen: the server's FIN must not end our side; we keep sending the body.
    this.socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    this.socket.on('data', (c: Buffer) => {
      this.received = Buffer.concat([this.received, c]);
      this.wake();
    });
    this.socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    this.socket.on('error', (err) => {
      this.error = err;
      this.wake();
    });
  }

  private wake() {
    for (const w of this.waiters.splice(0)) w();
  }

  private async until(what: string, done: () => boolean, ms = 5_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!done()) {
      if (this.error) throw new Error(`socket error while waiting for ${what}: ${this.error.code ?? this.error.message}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }

  async response(): Promise<RawResponse> {
    let parsed: RawResponse | undefined;
    let used = 0;
    await this.until('a response', () => {
      const headEnd = this.received.indexOf('\r\n\r\n');
      if (headEnd < 0) return false;
      const [statusLine, ...lines] = this.received.subarray(0, headEnd).toString('latin1').split('\r\n');
      const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      const length = Number(headers['content-length']);
      if (this.received.length < headEnd + 4 + length) return false;
      used = headEnd + 4 + length;
      parsed = { status: Number(statusLine.split(' ')[1]), headers, body: this.received.subarray(headEnd + 4, used).toString('utf8') };
      return true;
    });
    this.received = this.received.subarray(used);
    return parsed!;
  }

  write(data: Buffer | string): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(data, (err) => (err ? reject(err) : resolve())));
  }

  /** Waits `ms` and fails if the socket errored meanwhile (a reset shows up as EPIPE/ECONNRESET). */
  async stillOpenAfter(ms: number): Promise<void> {
    await new Promise((r) => setTimeout(r, ms));
    if (this.error) throw new Error(`the socket was reset: ${this.error.code ?? this.error.message}`);
  }

  waitForEnd(): Promise<void> {
    return this.until('the server to end the connection', () => this.ended || this.socket.destroyed);
  }
}

const uploadHead = (length: number) =>
  `POST /v1/builds HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: ${length}\r\n\r\n`;

describe('an upload refused before its body is read', () => {
  let api: ApiUnderTest;
  let port: number;
  const clients: RawClient[] = [];
  const connect = () => {
    const c = new RawClient(port);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    api = await startApi();
    port = Number(new URL(api.baseUrl).port);
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.socket.destroy();
  });
  afterAll(async () => {
    await api?.app.close();
    await cleanupTestConfig();
  });

  it('reads a small body to its end and keeps the connection (no reset, keep-alive)', async () => {
    const client = connect();
    const bodyLength = 64 * 1024;
    await client.write(uploadHead(bodyLength) + '--b\r\n');
    const refused = await client.response();
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.body).message).toMatch(/API key/);
    expect(refused.headers.connection).not.toBe('close');
    // The rest of the body after the answer: accepted, not reset.
    await client.write(Buffer.alloc(bodyLength - 5 - 1024, 0x61));
    await client.stillOpenAfter(100);
    await client.write(Buffer.alloc(1024, 0x61));
    await client.stillOpenAfter(100);
    // And the same connection serves the next request.
    await client.write('GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    const next = await client.response();
    expect(next.status).toBe(200);
  });

  it('half-closes a large upload after the answer, discards a bounded part of the rest, then closes', async () => {
    const client = connect();
    const bodyLength = 64 * 1024 * 1024;
    await client.write(uploadHead(bodyLength) + '--b\r\n');
    const refused = await client.response();
    expect(refused.status).toBe(401);
    expect(refused.headers.connection).toBe('close');
    // The server has sent its FIN but still reads: 512 KiB more go through without a reset.
    await client.waitForEnd();
    // (A reset shows on the write after the one that met the closed socket, hence two writes.)
    for (let i = 0; i < 2; i++) {
      await client.write(Buffer.alloc(256 * 1024, 0x61));
      await client.stillOpenAfter(100);
    }
    // Past the lingering bound (1 MiB) the server closes for good: the upload is cut short.
    let sent = 512 * 1024;
    const chunk = Buffer.alloc(256 * 1024, 0x61);
    while (!client.error && !client.socket.destroyed && sent < 16 * 1024 * 1024) {
      await client.write(chunk).catch(() => undefined);
      sent += chunk.length;
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(client.error ?? client.socket.destroyed).toBeTruthy();
    expect(sent).toBeLessThan(16 * 1024 * 1024);
  });
});

import { CliError, EXIT } from './cli-error.js';
import type { CliConfig } from './cli-config.js';

export interface ApiErrorBody {
  statusCode?: number;
  message?: string;
  code?: string;
  errors?: { field: string; message: string }[];
  requestId?: string;
}

/** The planforge API over fetch; HTTP failures become CliErrors with the right exit code. */
export class ApiClient {
  constructor(readonly config: CliConfig) {}

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.config.apiKey && { authorization: `Bearer ${this.config.apiKey}` }), 'user-agent': 'planforge-cli', ...extra };
  }

  async fetch(path: string, init: RequestInit = {}): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(this.config.url + path, { ...init, headers: { ...this.headers(), ...(init.headers as Record<string, string> | undefined) } });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new CliError(EXIT.server, `cannot reach ${this.config.url} (from ${this.config.source}): ${cause?.code ?? cause?.message ?? (err as Error).message}`);
    }
    if (res.ok || res.status === 304) return res;
    this.check(res.status, await res.text().catch(() => ''), res.headers.get('retry-after') ?? undefined);
    return res;
  }

  /** The parsed body of a 2xx answer; otherwise the CliError its status maps to. */
  check(status: number, text: string, retryAfter?: string | string[]): any {
    let body: ApiErrorBody | undefined;
    try {
      body = JSON.parse(text) as ApiErrorBody;
    } catch {
      body = undefined;
    }
    if (status >= 200 && status < 300) {
      if (body === undefined && text) throw new CliError(EXIT.server, `the server answered with something that is not JSON: ${text.slice(0, 200)}`);
      return body;
    }
    const detail = body?.message ?? (text.slice(0, 300) || `HTTP ${status}`);
    const fields = body?.errors?.length ? ` [${body.errors.map((e) => `${e.field}: ${e.message}`).join('; ')}]` : '';
    const message = `${status} ${detail}${fields}${body?.requestId ? ` (request ${body.requestId})` : ''}`;
    if (status === 401 || status === 403) {
      const hint = status === 401 && !this.config.apiKey ? ' — no API key: pass --api-key or set PLANFORGE_API_KEY' : '';
      throw new CliError(EXIT.auth, message + hint, body);
    }
    if (status >= 500 || status === 429) {
      throw new CliError(EXIT.server, message + (status === 429 ? ` (retry after ${String(retryAfter)} s)` : ''), body);
    }
    // Another 4xx: the request was wrong (bad id, bad input, conflict).
    throw new CliError(EXIT.usage, message, body);
  }

  async json<T = any>(path: string, init: RequestInit = {}): Promise<T> {
    const res = await this.fetch(path, init);
    const text = await res.text();
    try {
      return (text ? JSON.parse(text) : undefined) as T;
    } catch {
      throw new CliError(EXIT.server, `the server answered ${path} with something that is not JSON: ${text.slice(0, 200)}`);
    }
  }

  postJson<T = any>(path: string, body: unknown): Promise<T> {
    return this.json<T>(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  }
}

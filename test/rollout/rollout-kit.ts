/**
 * Shared by the rollout tests: an API with short telemetry buckets and watch
 * intervals, a reporter key, a simulated fleet posting telemetry over HTTP, a
 * local webhook receiver and polling helpers.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { json, request, startApi, type ApiUnderTest, type HttpResult } from '../api/api-test-kit.js';
import type { EnvOverrides } from '../helpers/env.js';
import { as, promote, seedVersion, type Registry } from '../registry-lifecycle/lifecycle-kit.js';

/** Fast settings: 1 s buckets, a watcher every 150 ms, webhook retries 50 ms apart. */
export const FAST_ROLLOUT_ENV: EnvOverrides = {
  TELEMETRY_BUCKET_SECONDS: '1',
  TELEMETRY_FLUSH_MS: '0',
  ROLLOUT_WATCH_INTERVAL_MS: '150',
  ROLLOUT_WEBHOOK_RETRY_MS: '50',
  ROLLOUT_WEBHOOK_ATTEMPTS: '4',
  WEBHOOK_ALLOW_INSECURE_HTTP: 'true',
};

export function startRolloutApi(overrides: EnvOverrides = {}): Promise<ApiUnderTest> {
  return startApi({ ...FAST_ROLLOUT_ENV, ...overrides });
}

export async function mintKey(api: ApiUnderTest, role: string, name = `test-${role}`): Promise<string> {
  const res = await request(api, { method: 'POST', url: '/v1/admin/keys', payload: { name, role } });
  if (res.statusCode !== 201) throw new Error(`creating a ${role} key answered ${res.statusCode}: ${res.body}`);
  return json(res).key;
}

export interface FleetSpec {
  model: string;
  channel: string;
  target?: string;
  version: number;
  /** Device ids are `${prefix}-${i}`. */
  devices: number;
  devicePrefix?: string;
  requestsPerDevice: number;
  /** Errors per device (integer). */
  errorsPerDevice?: number;
  p50Ms: number;
  p99Ms: number;
  /** Reports per HTTP request (default: all devices in one batch, at most 500). */
  batch?: number;
  /** Window length per report (default 5 s, ending now). */
  windowMs?: number;
}

/** Every device of the fleet sends one report, in batches over HTTP; resolves to the responses. */
export async function reportFleet(api: ApiUnderTest, reporterKey: string, f: FleetSpec): Promise<HttpResult[]> {
  const end = Date.now();
  const windowMs = f.windowMs ?? 5000;
  const reports = Array.from({ length: f.devices }, (_, i) => ({
    model: f.model,
    channel: f.channel,
    target: f.target ?? 'sm_86',
    version: f.version,
    deviceId: `${f.devicePrefix ?? 'dev'}-${i}`,
    window: { start: new Date(end - windowMs).toISOString(), end: end },
    requests: f.requestsPerDevice,
    errors: f.errorsPerDevice ?? 0,
    latency: { p50Ms: f.p50Ms, p99Ms: f.p99Ms },
  }));
  const size = Math.min(f.batch ?? 500, 500);
  const out: HttpResult[] = [];
  for (let i = 0; i < reports.length; i += size) {
    const res = await as(api, reporterKey, { method: 'POST', url: '/v1/telemetry', payload: reports.slice(i, i + size) as unknown as Record<string, unknown> });
    if (res.statusCode !== 202) throw new Error(`telemetry answered ${res.statusCode}: ${res.body}`);
    out.push(res);
  }
  return out;
}

export interface ReceivedWebhook {
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A local HTTP server recording what is POSTed to it; `failFirst` answers 503 that many times first. */
export async function webhookReceiver(failFirst = 0): Promise<{ url: string; received: ReceivedWebhook[]; attempts: () => number; close: () => Promise<void> }> {
  const received: ReceivedWebhook[] = [];
  let attempts = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      attempts++;
      if (attempts <= failFirst) {
        res.statusCode = 503;
        res.end('try later');
        return;
      }
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.statusCode = 204;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks/rollout`,
    received,
    attempts: () => attempts,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | null | false>, timeoutMs = 15_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export async function rolloutOf(api: ApiUnderTest, model: string, channel: string): Promise<any> {
  const res = await request(api, { url: `/v1/models/${model}/channels/${channel}/rollout` });
  if (res.statusCode !== 200) throw new Error(`GET rollout answered ${res.statusCode}: ${res.body}`);
  return json(res).rollout;
}

export async function waitForState(api: ApiUnderTest, model: string, channel: string, version: number, state: string, timeoutMs = 15_000): Promise<any> {
  return waitFor(`rollout of v${version} to be ${state}`, async () => {
    const r = await rolloutOf(api, model, channel);
    return r && r.version === version && r.state === state ? r : undefined;
  }, timeoutMs);
}

export async function putPolicy(api: ApiUnderTest, model: string, channel: string, policy: Record<string, unknown>): Promise<HttpResult> {
  return request(api, { method: 'PUT', url: `/v1/models/${model}/channels/${channel}/policy`, payload: policy });
}

/**
 * A model with `count` complete versions on sm_86 and the first one live on the
 * channel (promoted before any policy: a first promotion is never watched).
 */
export async function modelWithVersions(api: ApiUnderTest, reg: Registry, model: string, channel: string, count: number): Promise<number[]> {
  const versions: number[] = [];
  for (let i = 0; i < count; i++) versions.push((await seedVersion(reg, model, { sm_86: {} })).version);
  const res = await promote(api, model, channel, { version: versions[0], reason: 'first' });
  if (res.statusCode !== 200) throw new Error(`promote answered ${res.statusCode}: ${res.body}`);
  return versions;
}

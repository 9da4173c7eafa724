import http from 'node:http';
import { cleanupTestConfig } from '../helpers/env.js';
import { startApi, type ApiUnderTest } from '../api/api-test-kit.js';
import { openRegistry, promote, seedVersion } from './lifecycle-kit.js';

async function load(api: ApiUnderTest, path: string, headers: Record<string, string>, ms: number, concurrency: number) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const url = new URL(path, api.baseUrl);
  let done = 0, errors = 0;
  const end = Date.now() + ms;
  const one = () => new Promise<void>((resolve) => {
    const req = http.request(url, { agent, headers }, (res) => { res.resume(); res.on('end', () => { if (res.statusCode! >= 400) errors++; done++; resolve(); }); });
    req.on('error', () => { errors++; resolve(); });
    req.end();
  });
  await Promise.all(Array.from({ length: concurrency }, async () => { while (Date.now() < end) await one(); }));
  agent.destroy();
  return { rps: (done / ms) * 1000, errors };
}

describe('load', () => {
  afterAll(() => cleanupTestConfig());
  it('resolve', async () => {
    for (const disabled of ['false', 'true']) {
      const api = await startApi({ AUTH_DISABLED: disabled });
      const reg = await openRegistry(api);
      await seedVersion(reg, 'fleet', { sm_87: {} });
      await promote(api, 'fleet', 'production', { version: 1 });
      const h: Record<string, string> = disabled === 'true' ? {} : { authorization: `Bearer ${api.apiKey}` };
      await load(api, '/v1/resolve?model=fleet&channel=production&sm=87', h, 1000, 32);
      const r200 = await load(api, '/v1/resolve?model=fleet&channel=production&sm=87', h, 4000, 32);
      const r304 = await load(api, '/v1/resolve?model=fleet&channel=production&sm=87', { ...h, 'if-none-match': 'W/"x", *' }, 4000, 32);
      const live = await load(api, '/health/live', {}, 3000, 32);
      process.stdout.write(`[load] auth ${disabled === 'true' ? 'off' : 'on'}: resolve 200 ${r200.rps.toFixed(0)}/s (err ${r200.errors}), 304 ${r304.rps.toFixed(0)}/s, /health/live ${live.rps.toFixed(0)}/s\n`);
      await reg.close();
      await api.app.close();
    }
  });
});

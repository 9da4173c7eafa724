/**
 * The dashboard end to end in headless Chromium (playwright-core driving
 * /usr/bin/chromium): connect with a key, submit a model, watch per-target
 * progress arrive over SSE, see the versions' plans, promote, roll back with a
 * reason and a confirmation, and see the workers. Saves docs/dashboard.png.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import type { WorkerHandle } from '../../apps/worker/src/index.js';
import { json, request, startApi, type ApiUnderTest } from '../api/api-test-kit.js';
import { cleanupTestConfig } from '../helpers/env.js';
import { REPO_ROOT } from '../helpers/services.js';
import { startTestWorker, tinyModel } from '../operations/ops-kit.js';

const CHROMIUM = '/usr/bin/chromium';
const PROFILES = JSON.stringify({ input: { min: [1, 3, 8, 8], opt: [1, 3, 8, 8], max: [2, 3, 8, 8] } });
const describeIfChromium = existsSync(CHROMIUM) ? describe : describe.skip;

describeIfChromium('dashboard in headless Chromium', () => {
  let api: ApiUnderTest;
  let worker: WorkerHandle | undefined;
  let context: BrowserContext;
  let page: Page;
  let profileDir: string;
  let scratch: string;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    api = await startApi();
    scratch = mkdtempSync(join(tmpdir(), 'planforge-dash-'));
    profileDir = mkdtempSync(join(tmpdir(), 'planforge-chromium-'));
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1440, height: 1000 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error') pageErrors.push(msg.text());
    });
    // Promote asks for a confirmation (window.confirm).
    page.on('dialog', (dialog) => void dialog.accept());
  }, 120_000);

  afterAll(async () => {
    await context?.close();
    await worker?.close();
    await api?.app.close();
    await cleanupTestConfig();
    if (profileDir) rmSync(profileDir, { recursive: true, force: true });
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  async function submitThroughForm(file: string): Promise<void> {
    await page.click('nav button[data-view="builds"]');
    await page.setInputFiles('#submit-file', file);
    await page.fill('#submit-name', 'dash-cnn');
    await page.fill('#submit-targets', 'sm_80,sm_86');
    await page.selectOption('#submit-precision', 'fp32');
    await page.fill('#submit-profiles', PROFILES);
    await page.click('#submit-button');
    await page.waitForSelector('#flash:has-text("queued")');
  }

  it('submits a model and shows live per-target progress until the build succeeds', async () => {
    await page.goto(`${api.baseUrl}/dashboard`);
    await page.fill('#api-key', api.apiKey!);
    await page.click('#auth button[type=submit]');
    await page.waitForSelector('#who:has-text("connected")');

    // Record every progress text the page renders: the live updates, not only the end state.
    await page.evaluate(`(() => {
      const seen = (window.__seen = []);
      new MutationObserver(() => {
        document.querySelectorAll('.target-row .muted').forEach((n) => seen.push(n.textContent || ''));
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    })()`);
    const file = join(scratch, 'dash-cnn.onnx');
    writeFileSync(file, tinyModel());
    await submitThroughForm(file);
    const row = page.locator('tr[data-build]').first();
    await row.locator('.status', { hasText: 'queued' }).waitFor();
    // The worker starts once the page watches the build: every stage reaches it over SSE.
    worker = await startTestWorker(api.config, ['sm_80', 'sm_86'], 'dash-worker');
    await row.locator('.status', { hasText: 'succeeded' }).waitFor({ timeout: 90_000 });
    await page.waitForFunction(`document.querySelectorAll('tr[data-build] .bar.done').length === 2`);
    const seen = (await page.evaluate('window.__seen')) as string[];
    expect(seen.some((s) => /running/.test(s) && /on dash-worker \(cross\)/.test(s))).toBe(true);
    expect(seen.some((s) => /verify|upload/.test(s))).toBe(true);
    expect(await row.locator('[role=progressbar]').evaluateAll((bars) => bars.map((b) => b.getAttribute('aria-valuenow')))).toEqual(['100', '100']);
  });

  it('shows versions with their plans, promotes, and rolls back with a reason and a confirmation', async () => {
    // A second version (same bytes and spec: served from the build cache at once).
    const file = join(scratch, 'dash-cnn.onnx');
    await submitThroughForm(file);
    await page.locator('tr[data-build]').first().locator('.status', { hasText: 'succeeded' }).waitFor({ timeout: 60_000 });

    await page.click('nav button[data-view="models"]');
    await page.click('tr[data-model="dash-cnn"]');
    const v1 = page.locator('tr[data-version="1"]');
    await v1.locator('.plan[data-target="sm_80"]').waitFor();
    const planText = await v1.locator('.plan[data-target="sm_80"]').textContent();
    expect(planText).toMatch(/sm_80: [\d.]+ (B|KiB|MiB) · fp32 · untuned · (top-1 [\d.]+%|max abs [\d.e+-]+)/);

    // With a policy on the channel, promoting v2 over v1 starts a watched rollout the channel view shows.
    expect((await request(api, { method: 'PUT', url: '/v1/models/dash-cnn/channels/stable/policy', payload: { watchSeconds: 600 } })).statusCode).toBe(200);
    for (const version of ['1', '2']) {
      await page.fill('#promote-version', version);
      await page.fill('#promote-channel', 'stable');
      await page.click('#promote-form button[type=submit]');
      await page.waitForSelector(`#flash:has-text("Promoted dash-cnn v${version}")`);
    }
    const channel = page.locator('.channel[data-channel="stable"]');
    await channel.locator('tr[data-target="sm_80"] .pointer-version', { hasText: 'v2' }).waitFor();
    const rollout = channel.locator('.rollout[data-rollout="stable"]');
    await rollout.locator('.rollout-state', { hasText: 'watching' }).waitFor();
    expect(await rollout.locator('.rollout-canary').textContent()).toBe('every device');
    expect(await rollout.locator('.rollout-window').textContent()).toMatch(/^\d+ s of watch window left$/);
    await rollout.locator('tr.rollout-check[data-check="error_rate"][data-scope="all"]').waitFor();
    expect(await rollout.locator('.rollout-decision').textContent()).toMatch(/^Decision: wait: waiting for requests: 0 of 1,000$/);

    await channel.locator('button[data-action="rollback"]').click();
    const dialog = page.locator('#rollback-dialog');
    await dialog.waitFor({ state: 'visible' });
    // Neither reason nor confirmation: the form refuses to close with "confirm".
    await page.click('#rollback-submit');
    expect(await dialog.isVisible()).toBe(true);
    await page.fill('#rollback-reason', 'p99 latency regression on the fleet');
    await page.check('#rollback-confirm');
    await page.click('#rollback-submit');
    await page.waitForSelector('#flash:has-text("Rolled back stable")');
    const after = page.locator('.channel[data-channel="stable"]');
    await after.locator('tr[data-target="sm_80"] .pointer-version', { hasText: 'v1' }).waitFor();
    await after.locator('tr.history', { hasText: 'p99 latency regression on the fleet' }).first().waitFor();
    await after.locator('.rollout .rollout-state', { hasText: 'rolled_back' }).waitFor();
    expect(await after.locator('.rollout .rollout-decision').textContent()).toBe('Decision: p99 latency regression on the fleet');

    const state = json(await request(api, { url: '/v1/models/dash-cnn/channels/stable' }));
    expect(state.pointers.find((p: { target: string }) => p.target === 'sm_80').version).toBe(1);
    expect(state.history.find((h: { action: string }) => h.action === 'rollback')).toMatchObject({ target: 'sm_80', from: 2, to: 1, reason: 'p99 latency regression on the fleet' });

    mkdirSync(join(REPO_ROOT, 'docs'), { recursive: true });
    await page.screenshot({ path: join(REPO_ROOT, 'docs', 'dashboard.png'), fullPage: true });
  });

  it('shows worker pools and workers', async () => {
    await page.click('nav button[data-view="workers"]');
    const row = page.locator('tr[data-worker="dash-worker"]');
    await row.waitFor();
    expect(await row.textContent()).toMatch(/dash-worker.*alive.*sm_80, sm_86.*cross/);
    await page.locator('tr[data-pool="sm_80"]').waitFor();
    expect(pageErrors).toEqual([]);
  });
});

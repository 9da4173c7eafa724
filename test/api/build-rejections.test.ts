/**
 * Every way a submission can be refused: the status, a message naming the
 * field, and that nothing was left behind (no row, no S3 object, no temp file).
 */
import http from 'node:http';
import { cleanupTestConfig } from '../helpers/env.js';
import { tinyConvNet } from '../helpers/onnx-builder.js';
import {
  json,
  request,
  listObjectKeys,
  multipartBody,
  multipartHeaders,
  rowCounts,
  startApi,
  streamingUpload,
  submit,
  uploadDirEntries,
  type ApiUnderTest,
  type Part,
} from './api-test-kit.js';

async function waitUntil(condition: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** MAX_UPLOAD_BYTES for this file: the tiny model fits, 300 KiB does not. */
const MAX_UPLOAD = 256 * 1024;
const GOOD_SPEC = { model: 'tiny', targets: ['sm_90'] };

describe('POST /v1/builds rejections', () => {
  let api: ApiUnderTest;

  beforeAll(async () => {
    api = await startApi({ MAX_UPLOAD_BYTES: String(MAX_UPLOAD) });
  });
  afterEach(async () => {
    // The invariant of every case below.
    expect(await rowCounts(api.config)).toEqual({ models: 0, model_versions: 0, builds: 0, build_targets: 0, plans: 0 });
    expect(await listObjectKeys(api.config)).toEqual([]);
    expect(uploadDirEntries(api.config)).toEqual([]);
  });
  afterAll(async () => {
    await api?.app.close();
    await cleanupTestConfig();
  });

  const post = (parts: Part[]) =>
    request(api, { method: 'POST', url: '/v1/builds', headers: multipartHeaders(), payload: multipartBody(parts) });

  function expectFieldError(res: { statusCode: number; body: string }, status: number, field: string, message?: RegExp) {
    expect(res.statusCode).toBe(status);
    const body = json(res);
    expect(body.statusCode).toBe(status);
    expect(typeof body.error).toBe('string');
    expect(body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ field })]));
    expect(body.message).toContain(field);
    if (message) expect(body.message).toMatch(message);
    return body;
  }

  it('refuses a body that is not multipart (415)', async () => {
    const res = await request(api, { method: 'POST', url: '/v1/builds', payload: { spec: GOOD_SPEC } });
    expect(res.statusCode).toBe(415);
    expect(json(res)).toMatchObject({ statusCode: 415, error: 'Unsupported Media Type' });
    expect(json(res).message).toMatch(/multipart\/form-data/);
  });

  it('refuses a raw octet-stream body (415)', async () => {
    const res = await request(api, { method: 'POST', url: '/v1/builds', headers: { 'content-type': 'application/octet-stream' }, payload: tinyConvNet() });
    expect(res.statusCode).toBe(415);
    expect(json(res).statusCode).toBe(415);
  });

  it('requires the model file', async () => {
    expectFieldError(await post([{ name: 'spec', value: JSON.stringify(GOOD_SPEC) }]), 400, 'model', /missing/);
  });

  it('requires the spec', async () => {
    expectFieldError(await post([{ name: 'model', value: tinyConvNet(), filename: 'm.onnx' }]), 400, 'spec', /missing/);
  });

  it('refuses a spec that is not JSON', async () => {
    expectFieldError(await submit(api, { spec: '{"model": "tiny",', model: tinyConvNet() }), 400, 'spec', /JSON/);
  });

  it('refuses a spec part declared application/json that does not parse', async () => {
    const res = await post([
      { name: 'spec', value: '{nope', contentType: 'application/json' },
      { name: 'model', value: tinyConvNet(), filename: 'm.onnx' },
    ]);
    expectFieldError(res, 400, 'spec', /JSON/);
  });

  it('names the invalid spec field (precision)', async () => {
    expectFieldError(await submit(api, { spec: { ...GOOD_SPEC, precision: 'fp64' }, model: tinyConvNet() }), 400, 'precision');
  });

  it('names an invalid model name', async () => {
    expectFieldError(await submit(api, { spec: { ...GOOD_SPEC, model: 'Not A Name!' }, model: tinyConvNet() }), 400, 'model', /model name/);
  });

  it('refuses an unknown target (400, listing the valid ones)', async () => {
    const body = expectFieldError(await submit(api, { spec: { ...GOOD_SPEC, targets: ['sm_75'] }, model: tinyConvNet() }), 400, 'targets.0', /unknown target "sm_75"/);
    expect(body.message).toContain('sm_90');
  });

  it('validates the spec after spooling when the file comes first', async () => {
    expectFieldError(await submit(api, { spec: { ...GOOD_SPEC, targets: [] }, model: tinyConvNet(), order: 'file-first' }), 400, 'targets');
  });

  it('refuses a file that is not an ONNX model (422 with the parser reason)', async () => {
    const res = await submit(api, { spec: GOOD_SPEC, model: Buffer.from('this is not a protobuf at all \x00\xff\xfe') });
    expect(res.statusCode).toBe(422);
    const body = json(res);
    expect(body).toMatchObject({ statusCode: 422, error: 'Unprocessable Entity', errors: [expect.objectContaining({ field: 'model' })] });
    expect(body.code).toBe('E_PARSE');
    expect(body.message).toMatch(/protobuf/);
    expect(body.message).toMatch(/^model: not a usable ONNX model: .+/);
  });

  it('refuses an empty model file', async () => {
    expectFieldError(await submit(api, { spec: GOOD_SPEC, model: Buffer.alloc(0) }), 400, 'model', /empty/);
  });

  it('refuses a profile for an input the model does not have', async () => {
    const spec = { ...GOOD_SPEC, profiles: { pixels: { min: [1, 3, 8, 8], opt: [1, 3, 8, 8], max: [1, 3, 8, 8] } } };
    const body = expectFieldError(await submit(api, { spec, model: tinyConvNet() }), 400, 'profiles.pixels', /no input "pixels"/);
    expect(body.message).toContain('"input"');
  });

  it('refuses a profile whose rank differs from the input', async () => {
    const spec = { ...GOOD_SPEC, profiles: { input: { min: [1, 3, 8], opt: [2, 3, 8], max: [4, 3, 8] } } };
    expectFieldError(await submit(api, { spec, model: tinyConvNet() }), 400, 'profiles.input', /rank 3 .* rank 4/);
  });

  it('refuses a profile that changes a dimension the model fixes', async () => {
    const spec = { ...GOOD_SPEC, profiles: { input: { min: [1, 1, 8, 8], opt: [1, 3, 8, 8], max: [1, 3, 8, 8] } } };
    expectFieldError(await submit(api, { spec, model: tinyConvNet() }), 400, 'profiles.input', /dimension 1 .* fixed at 3/);
  });

  it('refuses a file in another field and a second model', async () => {
    expectFieldError(
      await post([
        { name: 'spec', value: JSON.stringify(GOOD_SPEC) },
        { name: 'weights', value: tinyConvNet(), filename: 'w.bin' },
      ]),
      400,
      'weights',
    );
    expectFieldError(
      await post([
        { name: 'spec', value: JSON.stringify(GOOD_SPEC) },
        { name: 'model', value: tinyConvNet(), filename: 'a.onnx' },
        { name: 'model', value: tinyConvNet(), filename: 'b.onnx' },
      ]),
      400,
      'model',
      /more than one/,
    );
  });

  it('refuses the model sent as a text field', async () => {
    expectFieldError(await post([{ name: 'spec', value: JSON.stringify(GOOD_SPEC) }, { name: 'model', value: 'abc' }]), 400, 'model', /file part/);
  });

  it('refuses an upload over MAX_UPLOAD_BYTES announced by Content-Length (413)', async () => {
    // Far past the limit + envelope: refused from the header, before the body is read.
    const res = await submit(api, { spec: GOOD_SPEC, model: Buffer.alloc(MAX_UPLOAD + 2 * 1024 * 1024, 1) });
    expect(res.statusCode).toBe(413);
    expect(json(res)).toMatchObject({ statusCode: 413, error: 'Payload Too Large', errors: [{ field: 'model' }] });
    expect(json(res).message).toMatch(/MAX_UPLOAD_BYTES/);
  });

  it('refuses a streamed upload as soon as it passes MAX_UPLOAD_BYTES (413, stops reading)', async () => {
    const fileBytes = 64 * 1024 * 1024;
    const upload = streamingUpload(JSON.stringify(GOOD_SPEC), fileBytes);
    const res = await request(api, { method: 'POST', url: '/v1/builds', headers: multipartHeaders(), payload: upload.stream });
    expect(res.statusCode).toBe(413);
    expect(json(res).message).toMatch(/MAX_UPLOAD_BYTES/);
    expect(res.headers.connection).toBe('close');
    // Stopped near the limit, not after the 64 MiB.
    expect(upload.served()).toBeLessThan(8 * 1024 * 1024);
    upload.stream.destroy();
  });

  it('refuses an invalid spec that precedes a large file without reading the file', async () => {
    const upload = streamingUpload(JSON.stringify({ ...GOOD_SPEC, targets: ['sm_99'] }), 64 * 1024 * 1024);
    const res = await request(api, { method: 'POST', url: '/v1/builds', headers: multipartHeaders(), payload: upload.stream });
    expectFieldError(res, 400, 'targets.0', /unknown target "sm_99"/);
    expect(res.headers.connection).toBe('close');
    expect(upload.served()).toBeLessThan(8 * 1024 * 1024);
    upload.stream.destroy();
  });

  it('removes the temp file when the client goes away mid-upload', async () => {
    // Past its first MiB a model goes to disk (smaller ones stay in memory until a build needs the file):
    // this needs an API whose limit lets 3 MiB through.
    const roomy = await startApi({ MAX_UPLOAD_BYTES: String(8 * 1024 * 1024) });
    try {
      const upload = streamingUpload(JSON.stringify(GOOD_SPEC), 3 * 1024 * 1024);
      const req = http.request(new URL('/v1/builds', roomy.baseUrl), {
        method: 'POST',
        headers: { ...multipartHeaders(), authorization: `Bearer ${roomy.apiKey}` },
        agent: false,
      });
      req.on('error', () => undefined);
      // Send the spec and the start of the file, then drop the connection.
      let sent = 0;
      for await (const chunk of upload.stream) {
        req.write(chunk);
        sent += chunk.length;
        if (sent > 1.5 * 1024 * 1024) break;
      }
      await waitUntil(() => uploadDirEntries(roomy.config).length > 0, 'the upload to be spooled');
      req.destroy();
      await waitUntil(() => uploadDirEntries(roomy.config).length === 0, 'the temp file to be removed');
    } finally {
      await roomy.app.close();
    }
  });

  it('refuses a spec over 64 KiB', async () => {
    const spec = { ...GOOD_SPEC, labels: Object.fromEntries(Array.from({ length: 400 }, (_, i) => [`k${i}`, 'v'.repeat(250)])) };
    expectFieldError(await submit(api, { spec, model: tinyConvNet() }), 400, 'spec', /64 KiB/);
  });
});

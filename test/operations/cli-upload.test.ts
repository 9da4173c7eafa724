/**
 * The CLI's streamed multipart upload (apps/cli/src/multipart-upload.ts) against a raw HTTP server
 * that dies in the middle of its answer. (An answer sent before the body is read is covered against
 * the real API: cli.test.ts for the CLI, test/api/refused-upload.test.ts for how the API keeps a reset
 * from overtaking the answer.)
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliError, EXIT } from '../../apps/cli/src/cli-error.js';
import { uploadMultipart } from '../../apps/cli/src/multipart-upload.js';

async function serve(handler: http.RequestListener): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1/builds`,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

describe('CLI multipart upload', () => {
  let dir = '';
  let file = '';
  const size = 1 << 20;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'planforge-upload-'));
    file = join(dir, 'big.onnx');
    writeFileSync(file, Buffer.alloc(size, 7));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const parts = () => [
    { name: 'spec', value: '{}' },
    { name: 'model', file: { path: file, size, filename: 'big.onnx' } },
  ];

  it('fails with the server exit code when the answer is cut off in the middle of its body', async () => {
    const srv = await serve((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(201, { 'content-type': 'application/json', 'content-length': '100' });
        res.write('{"build":', () => res.socket?.destroy());
      });
    });
    try {
      const err = await uploadMultipart(srv.url, {}, parts()).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(CliError);
      expect((err as CliError).exitCode).toBe(EXIT.server);
      expect((err as CliError).message).toMatch(/closed in the middle of its answer \(HTTP 201\)/);
    } finally {
      await srv.close();
    }
  }, 30_000);
});

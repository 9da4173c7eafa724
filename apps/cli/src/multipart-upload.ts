import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { CliError, EXIT } from './cli-error.js';

export interface UploadPart {
  name: string;
  /** Text field value, or a file streamed from disk. */
  value?: string;
  file?: { path: string; size: number; filename: string };
}

export interface UploadResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

const quote = (s: string) => s.replace(/["\r\n\\]/g, '_');

/**
 * POSTs multipart/form-data with the file streamed from disk and a known
 * Content-Length (the API refuses oversize uploads before reading them). A
 * response that arrives while the body is still being sent (401/403/413/429)
 * wins over the broken pipe that follows, so the caller sees the real answer.
 */
export function uploadMultipart(url: string, headers: Record<string, string>, parts: UploadPart[]): Promise<UploadResponse> {
  const boundary = `----planforge-${randomBytes(12).toString('hex')}`;
  const heads = parts.map((p) => {
    const disposition = `form-data; name="${quote(p.name)}"${p.file ? `; filename="${quote(p.file.filename)}"` : ''}`;
    return Buffer.from(`--${boundary}\r\nContent-Disposition: ${disposition}\r\n${p.file ? 'Content-Type: application/octet-stream\r\n' : ''}\r\n`);
  });
  const tail = Buffer.from(`--${boundary}--\r\n`);
  let length = tail.length;
  parts.forEach((p, i) => (length += heads[i].length + (p.file ? p.file.size : Buffer.byteLength(p.value ?? '')) + 2));
  const target = new URL(url);
  const transport = target.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    // Set once the response has started: from then on it is the answer, and a broken pipe
    // on the request side (the server closed after refusing the upload) is not an error.
    let answered = false;
    const req = transport.request(
      target,
      { method: 'POST', headers: { ...headers, 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(length) } },
      (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        const done = () => {
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
          // An answer before the whole body was sent (a refusal): the rest of the upload is moot.
          if (!req.writableFinished) req.destroy();
        };
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', () => undefined);
        res.on('end', done);
        res.on('close', () => {
          if (!res.complete) reject(new CliError(EXIT.server, `the connection to ${target.origin} closed in the middle of its answer (HTTP ${String(res.statusCode)})`));
        });
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (answered) return;
      // Give a response already on its way the chance to arrive.
      setTimeout(() => {
        if (!answered) reject(new CliError(EXIT.server, `cannot reach ${target.origin}: ${err.code ?? err.message}`));
      }, 500);
    });
    const send = async () => {
      for (const [i, p] of parts.entries()) {
        if (!req.write(heads[i])) await new Promise((r) => req.once('drain', r));
        if (p.file) {
          for await (const chunk of createReadStream(p.file.path)) {
            if (req.destroyed || answered) return;
            if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
          }
        } else req.write(p.value ?? '');
        req.write('\r\n');
      }
      req.end(tail);
    };
    send().catch(() => undefined);
  });
}

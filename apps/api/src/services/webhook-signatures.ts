import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** Generic webhooks: a signature older (or further in the future) than this is refused. */
export const SIGNATURE_TOLERANCE_SECONDS = 300;

const HEX_SHA256 = /^[0-9a-f]{64}$/i;

function hmacHex(secret: string, payload: Buffer | string): string {
  return createHmac('sha256', secret).update(payload).digest('hex');
}

/** Constant-time comparison of two hex digests of equal length. */
function equalHex(expected: string, given: string): boolean {
  if (!HEX_SHA256.test(given)) return false;
  return timingSafeEqual(Buffer.from(expected, 'hex'), Buffer.from(given.toLowerCase(), 'hex'));
}

/** GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`. */
export function verifyGithubSignature(secret: string, rawBody: Buffer, header: string): boolean {
  const m = /^sha256=([0-9a-fA-F]{64})$/.exec(header.trim());
  return m !== null && equalHex(hmacHex(secret, rawBody), m[1]);
}

/** GitLab: `X-Gitlab-Token` is the secret itself; compared in constant time (over digests, so lengths may differ). */
export function verifyGitlabToken(secret: string, token: string): boolean {
  const a = createHash('sha256').update(secret).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
}

export type GenericSignatureCheck = { ok: true; timestamp: number } | { ok: false; reason: string };

/**
 * Generic (Stripe style): `X-Planforge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`.
 * Several v1 entries are allowed (secret rotation); one must match.
 */
export function verifyGenericSignature(secret: string, rawBody: Buffer, header: string, nowSeconds = Math.floor(Date.now() / 1000)): GenericSignatureCheck {
  let timestamp: number | null = null;
  const signatures: string[] = [];
  for (const part of header.split(',')) {
    const [k, v] = part.split('=', 2).map((s) => s?.trim());
    if (k === 't' && v && /^\d{1,12}$/.test(v)) timestamp = Number(v);
    else if (k === 'v1' && v) signatures.push(v);
  }
  if (timestamp === null || !signatures.length) return { ok: false, reason: 'malformed X-Planforge-Signature: expected t=<unix seconds>,v1=<hex>' };
  const age = nowSeconds - timestamp;
  if (Math.abs(age) > SIGNATURE_TOLERANCE_SECONDS) {
    return { ok: false, reason: `signature timestamp is ${age > 0 ? `${age} s old` : `${-age} s in the future`} (tolerance ${SIGNATURE_TOLERANCE_SECONDS} s)` };
  }
  const expected = hmacHex(secret, Buffer.concat([Buffer.from(`${timestamp}.`), rawBody]));
  // Check every candidate (no early exit on the first match) so timing says nothing about which one matched.
  let matched = false;
  for (const s of signatures) matched = equalHex(expected, s) || matched;
  return matched ? { ok: true, timestamp } : { ok: false, reason: 'signature does not match' };
}

/** What a sender computes (tests, scripts): the header value for a body. */
export function signGeneric(secret: string, rawBody: Buffer | string, timestamp = Math.floor(Date.now() / 1000)): string {
  return `t=${timestamp},v1=${hmacHex(secret, Buffer.concat([Buffer.from(`${timestamp}.`), Buffer.from(rawBody)]))}`;
}

// Removes objects of the farm's bucket that nothing in the registry points at:
//   staging/*  uploads staged by the API/storage layer and never moved (a crash mid-upload)
//   plans/*    plans uploaded by a worker that died (or lost Postgres) before recording them
//   models/*   models uploaded by the API before a version row that never committed
// plus multipart uploads left incomplete. Only objects older than --older-than are touched:
// a worker uploads a plan before it records it, so a young unreferenced object may be
// on its way to being recorded. Each candidate is checked against Postgres again right
// before it is deleted. Configured by the environment (libs/config); needs a built tree.
//   node scripts/sweep-orphans.js [--older-than 24h] [--dry-run]
// Prints one JSON summary line; exit 0 on success, 1 on error, 2 on bad arguments.
import { AbortMultipartUploadCommand, DeleteObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import { loadConfig } from '../dist/libs/config/index.js';

const UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(raw) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(String(raw).trim());
  if (!m) throw new Error(`expected a duration like 30m, 24h or 0s, got "${raw}"`);
  return Number(m[1]) * UNITS[m[2]];
}

function parseArgs(argv) {
  const opts = { olderThanMs: UNITS.d, dryRun: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--dry-run') opts.dryRun = true;
    else if (arg === '--older-than') opts.olderThanMs = parseDuration(argv[++i]);
    else if (arg.startsWith('--older-than=')) opts.olderThanMs = parseDuration(arg.slice('--older-than='.length));
    else throw new Error(`unknown argument ${arg}`);
  }
  return opts;
}

/** Which registry column references objects under each prefix (staging/ objects are never referenced). */
const REFERENCES = {
  'plans/': 'SELECT 1 FROM plans WHERE s3_key = $1 LIMIT 1',
  'models/': 'SELECT 1 FROM model_versions WHERE model_key = $1 LIMIT 1',
  'staging/': null,
};

async function* listObjects(s3, bucket, prefix) {
  let token;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    yield* page.Contents ?? [];
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
}

export async function sweepOrphans(config, { olderThanMs, dryRun, now = Date.now() }) {
  const s3 = new S3Client({
    region: config.s3.region,
    endpoint: config.s3.endpoint,
    forcePathStyle: config.s3.forcePathStyle,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    ...(config.s3.accessKeyId ? { credentials: { accessKeyId: config.s3.accessKeyId, secretAccessKey: config.s3.secretAccessKey } } : {}),
  });
  const db = new pg.Client({ connectionString: config.databaseUrl, application_name: 'planforge-sweep-orphans' });
  await db.connect();
  const summary = { dryRun, olderThanMs, scanned: 0, kept: 0, young: 0, removed: [], abortedUploads: 0 };
  try {
    for (const [prefix, sql] of Object.entries(REFERENCES)) {
      for await (const object of listObjects(s3, config.s3.bucket, prefix)) {
        summary.scanned++;
        const age = now - new Date(object.LastModified ?? now).getTime();
        if (age < olderThanMs) {
          summary.young++;
          continue;
        }
        if (sql && (await db.query(sql, [object.Key])).rowCount > 0) {
          summary.kept++;
          continue;
        }
        if (!dryRun) await s3.send(new DeleteObjectCommand({ Bucket: config.s3.bucket, Key: object.Key }));
        summary.removed.push(object.Key);
      }
    }
    // Incomplete multipart uploads hold storage too; not every S3-compatible server lists them.
    try {
      const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: config.s3.bucket }));
      for (const upload of uploads.Uploads ?? []) {
        if (now - new Date(upload.Initiated ?? now).getTime() < olderThanMs) continue;
        if (!dryRun) await s3.send(new AbortMultipartUploadCommand({ Bucket: config.s3.bucket, Key: upload.Key, UploadId: upload.UploadId }));
        summary.abortedUploads++;
      }
    } catch (err) {
      summary.multipartListing = `not available: ${err.name ?? err.message}`;
    }
  } finally {
    await db.end().catch(() => undefined);
    s3.destroy();
  }
  return summary;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`sweep-orphans: ${err.message}\n`);
    process.exit(2);
  }
  try {
    const summary = await sweepOrphans(loadConfig(process.env), opts);
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } catch (err) {
    process.stderr.write(`sweep-orphans failed: ${err.stack ?? err.message}\n`);
    process.exit(1);
  }
}

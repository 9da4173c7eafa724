/**
 * The deployment files (docker-compose.yml, deploy/ kustomize base, components and
 * overlays) parsed with `yaml`: the planforge processes get only variables the
 * configuration knows (libs/config), the API's port and health paths match the
 * code, GPU workers reserve one GPU and may finish their job on shutdown, every
 * target has a worker and an autoscaler on its queue, and kustomizations only
 * name files that exist.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { CONFIG_VARIABLES, loadConfig } from '../../libs/config/index.js';
import { TARGETS } from '../../libs/contracts/index.js';
import { REPO_ROOT } from '../helpers/services.js';

/** Read outside libs/config, by the pino loggers of the API and the worker. */
const EXTRA_VARIABLES = ['LOG_LEVEL', 'NODE_ENV'];
const KNOWN = new Set([...CONFIG_VARIABLES, ...EXTRA_VARIABLES]);
const HEALTH_PATHS = ['/health/live', '/health/ready'];

type Doc = Record<string, any>;

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return yamlFiles(path);
    return /\.ya?ml$/.test(name) ? [path] : [];
  });
}

function manifests(): { file: string; doc: Doc }[] {
  return yamlFiles(join(REPO_ROOT, 'deploy')).flatMap((file) =>
    parseAllDocuments(readFileSync(file, 'utf8'))
      .map((d) => d.toJS() as Doc | null)
      .filter((doc): doc is Doc => Boolean(doc))
      .map((doc) => ({ file: relative(REPO_ROOT, file), doc })),
  );
}

function containersOf(doc: Doc): Doc[] {
  const spec = doc.kind === 'Job' || doc.kind === 'Deployment' ? doc.spec?.template?.spec : undefined;
  return [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])];
}

describe('deployment files', () => {
  const compose = parse(readFileSync(join(REPO_ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as Doc;
  const docs = manifests();
  const defaultPort = String(loadConfig({}).api.port);

  it('docker-compose: planforge services get only known variables; the API port and health path match; Redis keeps its AOF', () => {
    const apps = Object.entries(compose.services as Record<string, Doc>).filter(([, s]) => /planforge-/.test(String(s.image ?? '')));
    expect(apps.map(([name]) => name)).toEqual(expect.arrayContaining(['api', 'worker-ampere', 'worker-hopper', 'worker-jetson']));
    for (const [name, service] of apps) {
      const env = Object.keys(service.environment ?? {});
      expect({ service: name, unknown: env.filter((v) => !KNOWN.has(v)) }).toEqual({ service: name, unknown: [] });
    }
    const api = compose.services.api;
    const port = String(api.environment.API_PORT ?? defaultPort);
    expect(api.ports).toContain(`${port}:${port}`);
    expect(JSON.stringify(api.healthcheck.test)).toContain(`:${port}/health/ready`);
    expect(compose.services.redis.command.join(' ')).toMatch(/--appendonly yes/);
    expect(compose.services.redis.command.join(' ')).toMatch(/noeviction/);
    expect(compose.services['minio-init'].entrypoint.join(' ')).toMatch(/mc mb --ignore-existing farm\/planforge/);
    for (const name of ['worker-ampere', 'worker-hopper']) {
      const worker = compose.services[name];
      expect(worker.environment.WORKER_MODE).toBe('gpu');
      expect(worker.deploy.resources.reservations.devices[0]).toMatchObject({ driver: 'nvidia', count: 1, capabilities: ['gpu'] });
      expect(worker.stop_grace_period).toBeDefined();
    }
    expect(compose.services['worker-jetson']).toMatchObject({ profiles: ['jetson'], platform: 'linux/arm64', environment: { WORKER_TARGETS: 'sm_87' } });
    // Every WORKER_TARGETS the file names is valid for libs/config.
    for (const [, service] of apps) if (service.environment?.WORKER_TARGETS) expect(() => loadConfig({ WORKER_TARGETS: service.environment.WORKER_TARGETS })).not.toThrow();
  });

  it('kubernetes: containers and config maps use only known variables', () => {
    expect(docs.length).toBeGreaterThan(10);
    for (const { file, doc } of docs) {
      for (const c of containersOf(doc)) {
        const names = (c.env ?? []).map((e: { name: string }) => e.name);
        expect({ file, unknown: names.filter((n: string) => !KNOWN.has(n)) }).toEqual({ file, unknown: [] });
      }
      for (const generator of doc.configMapGenerator ?? []) {
        const keys = (generator.literals ?? []).map((l: string) => l.split('=')[0]);
        expect({ file, unknown: keys.filter((k: string) => !KNOWN.has(k)) }).toEqual({ file, unknown: [] });
        // The values parse: the same validation the processes run at boot.
        const env = Object.fromEntries((generator.literals ?? []).map((l: string) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
        expect(() => loadConfig(env)).not.toThrow();
      }
    }
  });

  it('kubernetes: the API listens on API_PORT, its probes use the health paths, its Service targets it', () => {
    const base = docs.find((d) => d.file === 'deploy/base/kustomization.yaml')!.doc;
    const literals: string[] = base.configMapGenerator.find((g: Doc) => g.name === 'planforge-config').literals;
    const port = Number(literals.find((l) => l.startsWith('API_PORT='))?.split('=')[1] ?? defaultPort);
    const api = docs.find((d) => d.doc.kind === 'Deployment' && d.doc.metadata.name === 'planforge-api')!.doc;
    const [container] = containersOf(api);
    const named = container.ports.find((p: Doc) => p.name === 'http');
    expect(named.containerPort).toBe(port);
    const probePaths = ['livenessProbe', 'readinessProbe', 'startupProbe'].map((p) => container[p]?.httpGet?.path).filter(Boolean);
    expect(probePaths.length).toBeGreaterThanOrEqual(2);
    for (const path of probePaths) expect(HEALTH_PATHS).toContain(path);
    expect(container.readinessProbe.httpGet.path).toBe('/health/ready');
    const service = docs.find((d) => d.doc.kind === 'Service' && d.doc.metadata.name === 'planforge-api')!.doc;
    expect(service.spec.ports.some((p: Doc) => p.targetPort === 'http' || p.targetPort === port)).toBe(true);
    const migrations = docs.find((d) => d.doc.kind === 'Job')!.doc;
    expect(containersOf(migrations)[0].command.join(' ')).toContain('scripts/migrate.js');
  });

  it('kubernetes: a GPU worker Deployment per target, one GPU each, GPU feature discovery selectors, a grace period, an autoscaler and a PDB', () => {
    const workers = docs.filter((d) => d.doc.kind === 'Deployment' && d.doc.metadata.labels?.['app.kubernetes.io/name'] === 'planforge-worker');
    const byTarget = new Map(workers.map((w) => [w.doc.metadata.labels['planforge.dev/target'], w.doc]));
    expect([...byTarget.keys()].sort()).toEqual([...TARGETS]);
    for (const [target, worker] of byTarget) {
      const spec = worker.spec.template.spec;
      const [container] = containersOf(worker);
      const env = Object.fromEntries(container.env.map((e: Doc) => [e.name, e.value]));
      expect({ target, targets: env.WORKER_TARGETS, mode: env.WORKER_MODE }).toEqual({ target, targets: target, mode: 'gpu' });
      expect(container.resources.limits['nvidia.com/gpu']).toBe(1);
      expect(Object.keys(spec.nodeSelector).some((k) => k.startsWith('nvidia.com/gpu.'))).toBe(true);
      expect(spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(60);
    }
    const scaled = docs.filter((d) => d.doc.kind === 'ScaledObject').map((d) => d.doc);
    for (const [target, worker] of byTarget) {
      const so = scaled.find((s) => s.spec.scaleTargetRef.name === worker.metadata.name);
      expect({ target, scaledObject: Boolean(so) }).toEqual({ target, scaledObject: true });
      expect(so!.spec.triggers[0].metadata.query).toContain(`planforge_queue_depth{target="${target}"`);
    }
    const pdbs = docs.filter((d) => d.doc.kind === 'PodDisruptionBudget').map((d) => d.doc);
    for (const target of TARGETS) expect(pdbs.some((p) => p.spec.selector.matchLabels['planforge.dev/target'] === target)).toBe(true);
    expect(pdbs.some((p) => p.spec.selector.matchLabels['app.kubernetes.io/name'] === 'planforge-api')).toBe(true);
  });

  it('kustomizations name only files and directories that exist', () => {
    for (const { file, doc } of docs.filter((d) => /kustomization\.ya?ml$/.test(d.file))) {
      for (const entry of [...(doc.resources ?? []), ...(doc.components ?? [])]) {
        expect({ file, entry, exists: existsSync(join(REPO_ROOT, dirname(file), entry)) }).toEqual({ file, entry, exists: true });
      }
    }
  });
});

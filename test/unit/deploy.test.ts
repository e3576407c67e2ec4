/**
 * What can be checked of the shipping files without a Docker engine or a cluster: the Dockerfile's
 * stages, user, build args, port, healthcheck and command; the compose stack's services, health
 * checks, GPU reservations and variables; the Kubernetes manifests' structure, probes, resources,
 * selectors and variables. Every variable they set must exist in the config schema.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { configSchema } from '../../src/config.ts';

const KNOWN = new Set(Object.keys(configSchema.shape));

interface Instruction {
  op: string;
  args: string;
}

/** Dockerfile → stages of instructions (continuation lines joined, comments dropped). */
function dockerStages(text: string): { name: string; from: string; steps: Instruction[] }[] {
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const stages: { name: string; from: string; steps: Instruction[] }[] = [];
  for (const line of lines) {
    const [op, ...rest] = line.split(/\s+/);
    const args = rest.join(' ');
    if (op!.toUpperCase() === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?/i.exec(args)!;
      stages.push({ name: m[2] ?? `#${stages.length}`, from: m[1]!, steps: [] });
    } else stages.at(-1)?.steps.push({ op: op!.toUpperCase(), args });
  }
  return stages;
}

describe('Dockerfile', () => {
  const stages = dockerStages(fs.readFileSync('Dockerfile', 'utf8'));
  const stage = (name: string) => stages.find((s) => s.name === name)!;

  it('builds in one stage and runs the CPU and CUDA images as appuser with the host UID/GID', () => {
    assert.deepEqual(stages.map((s) => s.name), ['build', 'runtime', 'node-binary', 'cuda', '#4']);
    assert.equal(stages.at(-1)!.from, 'runtime', 'the default target is the CPU runtime');
    const build = stage('build');
    assert.ok(build.steps.some((s) => s.op === 'RUN' && /npm ci/.test(s.args)), 'installs from the lockfile');
    assert.ok(build.steps.some((s) => s.op === 'RUN' && /npm run build -w frontend/.test(s.args)), 'builds the playground');
    for (const name of ['runtime', 'cuda']) {
      const s = stage(name);
      const args = s.steps.filter((x) => x.op === 'ARG').map((x) => x.args.split('=')[0]);
      assert.ok(args.includes('UID') && args.includes('GID'), `${name}: UID/GID build args`);
      assert.ok(s.steps.some((x) => x.op === 'RUN' && /useradd --uid "\$\{UID\}" --gid "\$\{GID\}".*appuser/.test(x.args)), `${name}: appuser from UID/GID`);
      assert.equal(s.steps.filter((x) => x.op === 'USER').at(-1)?.args, 'appuser', `${name}: runs as appuser`);
      assert.ok(s.steps.some((x) => x.op === 'EXPOSE' && x.args === '6666 6680'), `${name}: exposes 6666 (API) and 6680 (browsers)`);
      assert.ok(s.steps.some((x) => x.op === 'HEALTHCHECK' && /\/health'/.test(x.args)), `${name}: HEALTHCHECK on /health`);
      assert.ok(s.steps.some((x) => x.op === 'RUN' && /apt-get install.*ffmpeg/.test(x.args)), `${name}: ffmpeg for the encoders`);
      assert.ok(s.steps.some((x) => x.op === 'ENV' && /HF_HOME=\/home\/appuser\/\.cache\/huggingface/.test(x.args)), `${name}: the HF cache where the volume mounts`);
      assert.ok(s.steps.some((x) => x.op === 'COPY' && /frontend\/dist/.test(x.args)), `${name}: ships the playground`);
      assert.equal(s.steps.filter((x) => x.op === 'CMD').at(-1)?.args, '["node", "dist/main.js"]');
      for (const env of s.steps.filter((x) => x.op === 'ENV')) {
        for (const name of [...env.args.matchAll(/(\w+)=/g)].map((m) => m[1]!)) if (name !== 'NODE_ENV') assert.ok(KNOWN.has(name) || name === 'HF_HOME', `ENV ${name} is a known variable`);
      }
    }
    assert.match(stage('cuda').from, /^nvidia\/cuda:12\.[\d.]+-runtime-/);
  });

  it('.dockerignore keeps the context small and secrets out', () => {
    const ignored = fs.readFileSync('.dockerignore', 'utf8').split('\n');
    for (const entry of ['node_modules', 'frontend/node_modules', '.git', '.env', '.cache', 'dist']) assert.ok(ignored.includes(entry), entry);
  });
});

describe('deploy/compose.yaml', () => {
  const compose = parse(fs.readFileSync('deploy/compose.yaml', 'utf8')) as { services: Record<string, Record<string, unknown>> };

  it('runs the gateway, Redis, fish-speech and an optional vLLM, each with a health check', () => {
    assert.deepEqual(Object.keys(compose.services).sort(), ['fish-speech', 'gateway', 'redis', 'vllm', 'worker']);
    for (const [name, service] of Object.entries(compose.services)) assert.ok((service.healthcheck as { test: unknown })?.test, `${name} has a healthcheck`);
    assert.deepEqual(compose.services.vllm!.profiles, ['vllm']);
    assert.deepEqual((compose.services.gateway!.depends_on as Record<string, unknown>).redis, { condition: 'service_healthy' });
    const gpu = (s: string) => JSON.stringify((compose.services[s]!.deploy as object) ?? {});
    for (const s of ['gateway', 'fish-speech', 'vllm']) assert.match(gpu(s), /"driver":"nvidia".*"capabilities":\["gpu"\]/, `${s} reserves a GPU`);
    const build = compose.services.gateway!.build as { target: string; args: Record<string, string> };
    assert.equal(build.target, 'cuda');
    assert.deepEqual(Object.keys(build.args).sort(), ['GID', 'UID']);
  });

  it('sets only variables the gateway knows, pointing at the other services', () => {
    const env = compose.services.gateway!.environment as Record<string, string>;
    for (const name of Object.keys(env)) assert.ok(KNOWN.has(name), `${name} is in the config schema`);
    assert.equal(env.REDIS_URL, 'redis://redis:6379/0');
    assert.equal(env.OPENAUDIO_API_BASE, 'http://fish-speech:8080');
    assert.ok((compose.services.gateway!.volumes as string[]).some((v) => v.endsWith(':/home/appuser/.cache/huggingface')));
  });

  it('transcription-job workers: JOB_WORKER=true, on Redis, sharing the jobs volume with the gateway', () => {
    const worker = compose.services.worker!;
    const env = worker.environment as Record<string, string>;
    for (const name of Object.keys(env)) assert.ok(KNOWN.has(name), `${name} is in the config schema`);
    assert.equal(env.JOB_WORKER, 'true');
    assert.equal(env.REDIS_URL, 'redis://redis:6379/0');
    const gatewayEnv = compose.services.gateway!.environment as Record<string, string>;
    assert.equal(env.JOB_STORAGE_DIR, gatewayEnv.JOB_STORAGE_DIR);
    const mount = `jobs-data:${env.JOB_STORAGE_DIR}`;
    assert.ok((worker.volumes as string[]).includes(mount) && (compose.services.gateway!.volumes as string[]).includes(mount));
  });
});

describe('deploy/k8s', () => {
  const docs = fs
    .readdirSync('deploy/k8s')
    .filter((f) => f.endsWith('.yaml'))
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- manifests are untyped YAML; the assertions are the types
    .flatMap((f) => parseAllDocuments(fs.readFileSync(path.join('deploy/k8s', f), 'utf8')).map((d) => ({ file: f, doc: d.toJS() as Record<string, any> })));
  const find = (kind: string, name: string) => docs.find((d) => d.doc.kind === kind && d.doc.metadata?.name === name)?.doc;

  it('every document has apiVersion, kind and a name', () => {
    assert.ok(docs.length >= 12);
    for (const { file, doc } of docs) assert.ok(doc.apiVersion && doc.kind && doc.metadata?.name, `${file}: ${JSON.stringify(doc).slice(0, 80)}`);
  });

  it('the gateway: probes on /health/ready and /health, resources, non-root, an autoscaler, a Service', () => {
    const deployment = find('Deployment', 'gemma-3-api')!;
    const container = deployment.spec.template.spec.containers[0];
    assert.equal(container.readinessProbe.httpGet.path, '/health/ready');
    assert.equal(container.livenessProbe.httpGet.path, '/health');
    assert.ok(container.resources.requests.cpu && container.resources.requests.memory);
    assert.equal(deployment.spec.template.spec.securityContext.runAsNonRoot, true);
    assert.equal(container.ports[0].containerPort, 6666);
    assert.ok(container.ports.some((p: { name: string; containerPort: number }) => p.name === 'browser' && p.containerPort === 6680), 'the browser port (BROWSER_PORT default)');
    const hpa = find('HorizontalPodAutoscaler', 'gemma-3-api')!;
    assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: 'gemma-3-api' });
    assert.ok(hpa.spec.minReplicas >= 2);
  });

  it('every Service selects pods of a Deployment; the engine pods have GPU limits', () => {
    for (const { doc } of docs.filter((d) => d.doc.kind === 'Service')) {
      const target = docs.find((d) => d.doc.kind === 'Deployment' && Object.entries(doc.spec.selector).every(([k, v]) => d.doc.spec.template.metadata.labels[k] === v));
      assert.ok(target, `Service ${doc.metadata.name} selects a Deployment`);
      const ports = target!.doc.spec.template.spec.containers.flatMap((c: { ports: { name: string }[] }) => c.ports.map((p) => p.name));
      for (const p of doc.spec.ports) assert.ok(ports.includes(p.targetPort), `${doc.metadata.name}: target port ${p.targetPort} exists`);
    }
    for (const name of ['vllm', 'fish-speech']) assert.equal(find('Deployment', name)!.spec.template.spec.containers[0].resources.limits['nvidia.com/gpu'], 1);
  });

  it('transcription jobs: API replicas without workers, worker replicas, one ReadWriteMany volume for both', () => {
    const env = (d: Record<string, any>) => Object.fromEntries(d.spec.template.spec.containers[0].env.map((e: { name: string; value?: string }) => [e.name, e.value])); // eslint-disable-line @typescript-eslint/no-explicit-any
    const gateway = find('Deployment', 'gemma-3-api')!;
    const worker = find('Deployment', 'gemma-3-api-worker')!;
    assert.equal(env(gateway).JOB_WORKER, 'false');
    assert.equal(env(worker).JOB_WORKER, 'true');
    assert.ok(worker.spec.replicas >= 2);
    const dir = find('ConfigMap', 'gemma-3-api-config')!.data.JOB_STORAGE_DIR;
    for (const d of [gateway, worker]) {
      assert.ok(d.spec.template.spec.containers[0].volumeMounts.some((m: { name: string; mountPath: string }) => m.name === 'jobs-data' && m.mountPath === dir));
      assert.ok(d.spec.template.spec.volumes.some((v: { persistentVolumeClaim?: { claimName: string } }) => v.persistentVolumeClaim?.claimName === 'jobs-data'));
    }
    assert.deepEqual(find('PersistentVolumeClaim', 'jobs-data')!.spec.accessModes, ['ReadWriteMany']);
    // the worker pods are not behind the gateway's Service
    const selector = find('Service', 'gemma-3-api')!.spec.selector as Record<string, string>;
    assert.ok(!Object.entries(selector).every(([k, v]) => worker.spec.template.metadata.labels[k] === v));
  });

  it('the ConfigMap sets only known variables; referenced secrets and claims exist', () => {
    const config = find('ConfigMap', 'gemma-3-api-config')!;
    for (const name of Object.keys(config.data)) assert.ok(KNOWN.has(name), `${name} is in the config schema`);
    const secret = find('Secret', 'gemma-3-api-secrets')!;
    const text = JSON.stringify(docs.map((d) => d.doc));
    for (const key of [...text.matchAll(/"secretKeyRef":\{"name":"gemma-3-api-secrets","key":"(\w+)"\}/g)].map((m) => m[1]!)) assert.ok(key in secret.stringData, `secret key ${key}`);
    for (const claim of [...text.matchAll(/"claimName":"([\w-]+)"/g)].map((m) => m[1]!)) assert.ok(find('PersistentVolumeClaim', claim), `claim ${claim}`);
  });
});

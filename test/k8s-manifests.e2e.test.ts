/**
 * deploy/k8s cannot be applied here (no cluster): the manifests are parsed and checked against
 * the code. Every env name is a variable of shared/config.ts and the settings parse; probes
 * point at paths the api and the worker really answer, on the ports they listen on; the grace
 * period covers the drain; pods run as non-root; both roles share one ReadWriteMany spool; the
 * PDBs select the pods; KEDA scales the worker Deployment on a metric the service exports.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, parse } from 'yaml';
import { CONFIG_VARIABLES, loadConfig, SECRET_VARIABLES } from '@signspool/shared/config';
import { createMetrics } from '@signspool/shared/metrics';
import { QUEUES } from '@signspool/shared/queue';
import { ServiceHttpServer } from '@signspool/shared/service-http';
import { API_NODE_FLAGS } from '@signspool/api/node-flags';
import { WORKER_NODE_FLAGS } from '@signspool/worker/node-flags';
import { startStack, type Stack } from './harness/stack.js';

const dir = path.resolve(import.meta.dirname, '../deploy/k8s');

interface Probe {
  httpGet: { path: string; port: number | string };
}
interface Container {
  name: string;
  command: string[];
  envFrom?: { configMapRef?: { name: string } }[];
  env?: { name: string; value?: string; valueFrom?: unknown }[];
  ports: { name: string; containerPort: number }[];
  readinessProbe: Probe;
  livenessProbe: Probe;
  startupProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  securityContext: { allowPrivilegeEscalation: boolean; readOnlyRootFilesystem?: boolean };
  volumeMounts: { name: string; mountPath: string }[];
}
interface Resource {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  data?: Record<string, string>;
  spec: Record<string, unknown>;
}
interface DeploymentSpec {
  selector: { matchLabels: Record<string, string> };
  template: {
    metadata: { labels: Record<string, string> };
    spec: {
      terminationGracePeriodSeconds: number;
      securityContext: { runAsNonRoot: boolean; runAsUser: number };
      containers: Container[];
      volumes: { name: string; persistentVolumeClaim?: { claimName: string } }[];
    };
  };
}

const kustomization = parse(readFileSync(path.join(dir, 'kustomization.yaml'), 'utf8')) as { resources: string[] };
const resources: Resource[] = kustomization.resources.flatMap((file) =>
  parseAllDocuments(readFileSync(path.join(dir, file), 'utf8')).map((d) => d.toJS() as Resource),
);
const find = (kind: string, name: string): Resource => {
  const r = resources.find((x) => x.kind === kind && x.metadata.name === name);
  if (!r) throw new Error(`no ${kind} ${name}`);
  return r;
};
const configMap = find('ConfigMap', 'signspool-config').data ?? {};
const deployments = { api: find('Deployment', 'signspool-api'), worker: find('Deployment', 'signspool-worker') };
const specOf = (d: Resource): DeploymentSpec => d.spec as unknown as DeploymentSpec;
const containerOf = (d: Resource): Container => {
  const c = specOf(d).template.spec.containers[0];
  if (!c) throw new Error('no container');
  return c;
};
/** The environment a pod gets: the ConfigMap, plus placeholder values for the secret references. */
const podEnv = (d: Resource): Record<string, string> => {
  const env: Record<string, string> = { ...configMap };
  for (const e of containerOf(d).env ?? [])
    env[e.name] = e.value ?? (e.name === 'REDIS_URL' ? 'redis://:pw@redis:6379' : e.name === 'API_KEYS' ? `acme:${'0'.repeat(64)}` : 'placeholder');
  return env;
};

describe('deploy/k8s', () => {
  it('uses only variables of the config schema, and the settings parse', () => {
    const known = new Set([...CONFIG_VARIABLES, ...SECRET_VARIABLES.map((n) => `${n}_FILE`)]);
    for (const name of Object.keys(configMap)) expect(known.has(name), `ConfigMap ${name}`).toBe(true);
    for (const [role, d] of Object.entries(deployments)) {
      for (const e of containerOf(d).env ?? []) expect(known.has(e.name), `${role} env ${e.name}`).toBe(true);
      expect(containerOf(d).envFrom?.[0]?.configMapRef?.name).toBe('signspool-config');
      expect(() => loadConfig(podEnv(d)), role).not.toThrow();
    }
  });

  it('keeps /metrics and /docs off the api Service: metrics on their own pod port, the reference unpublished', () => {
    const config = loadConfig(podEnv(deployments.api));
    expect(config.metrics.port).toBeDefined();
    expect(config.metrics.port).not.toBe(config.port);
    expect(config.docsPublic).toBe(false);
    const c = containerOf(deployments.api);
    const annotations = (specOf(deployments.api).template as { metadata: { annotations?: Record<string, string> } }).metadata.annotations ?? {};
    expect(annotations['prometheus.io/port']).toBe(String(config.metrics.port));
    expect(c.ports.find((p) => p.containerPort === config.metrics.port)).toBeDefined();
    // The Service reaches the http port (PORT) only.
    const service = find('Service', 'signspool-api');
    const httpPort = c.ports.find((p) => p.containerPort === config.port)?.name;
    for (const p of service.spec['ports'] as { targetPort: string | number }[]) expect([httpPort, config.port]).toContain(p.targetPort);
  });

  it('starts node in exec form on the built entry point, with the worker flags for the worker and the api flags for the api', () => {
    for (const [role, d] of Object.entries(deployments)) {
      const cmd = containerOf(d).command;
      expect(cmd[0]).toBe('node');
      expect(cmd.slice(-2)).toEqual(['dist/bin/start.js', role]);
    }
    for (const flag of WORKER_NODE_FLAGS) expect(containerOf(deployments.worker).command).toContain(flag);
    for (const flag of API_NODE_FLAGS) expect(containerOf(deployments.api).command).toContain(flag);
  });

  it('gives every pod longer to stop than its preStop pause plus SHUTDOWN_TIMEOUT', () => {
    for (const [role, d] of Object.entries(deployments)) {
      const config = loadConfig(podEnv(d));
      const pause = Number(containerOf(d).lifecycle?.preStop?.exec?.command.at(-1) ?? 0) * 1000;
      expect(specOf(d).template.spec.terminationGracePeriodSeconds * 1000, role).toBeGreaterThan(pause + config.shutdownTimeoutMs);
    }
  });

  it('runs as non-root without privilege escalation', () => {
    for (const d of Object.values(deployments)) {
      const pod = specOf(d).template.spec.securityContext;
      expect(pod.runAsNonRoot).toBe(true);
      expect(pod.runAsUser).toBeGreaterThan(0);
      expect(containerOf(d).securityContext.allowPrivilegeEscalation).toBe(false);
    }
  });

  it('mounts one ReadWriteMany claim at SPOOL_DIR in both roles', () => {
    const claims = Object.values(deployments).map((d) => {
      const mount = containerOf(d).volumeMounts.find((m) => m.mountPath === configMap['SPOOL_DIR']);
      return specOf(d).template.spec.volumes.find((v) => v.name === mount?.name)?.persistentVolumeClaim?.claimName;
    });
    expect(claims[0]).toBeDefined();
    expect(claims[1]).toBe(claims[0]);
    const pvc = find('PersistentVolumeClaim', claims[0] ?? '-');
    expect(pvc.spec['accessModes']).toContain('ReadWriteMany');
  });

  it('has a PodDisruptionBudget selecting each Deployment', () => {
    const pdbs = resources.filter((r) => r.kind === 'PodDisruptionBudget');
    for (const [role, d] of Object.entries(deployments)) {
      const labels = specOf(d).template.metadata.labels;
      expect(specOf(d).selector.matchLabels).toEqual(Object.fromEntries(Object.entries(labels).filter(([k]) => k in specOf(d).selector.matchLabels)));
      const match = pdbs.filter((p) =>
        Object.entries((p.spec['selector'] as { matchLabels: Record<string, string> }).matchLabels).every(([k, v]) => labels[k] === v),
      );
      expect(match, role).toHaveLength(1);
    }
  });

  it('scales the worker Deployment with KEDA on a queue metric the service exports', async () => {
    const so = find('ScaledObject', 'signspool-worker');
    expect(so.apiVersion).toBe('keda.sh/v1alpha1');
    expect((so.spec['scaleTargetRef'] as { name: string }).name).toBe(deployments.worker.metadata.name);
    const trigger = (so.spec['triggers'] as { type: string; metadata: { query: string; threshold: string } }[])[0];
    expect(trigger?.type).toBe('prometheus');
    expect(Number(trigger?.metadata.threshold)).toBeGreaterThan(0);
    const query = trigger?.metadata.query ?? '';
    const metric = /(signspool_\w+)\{/.exec(query)?.[1];
    const exported = (await createMetrics({ defaultMetrics: false }).registry.getMetricsAsJSON()).map((m) => m.name);
    expect(exported).toContain(metric);
    expect(Object.values(QUEUES)).toContain(/queue="(\w+)"/.exec(query)?.[1]);
  });

  describe('probes reach what the code serves', () => {
    let stack: Stack;
    let worker: ServiceHttpServer;
    beforeAll(async () => {
      // The api's exposure settings of the ConfigMap (the port of /metrics is a free one here).
      stack = await startStack({ worker: false, env: { DOCS_PUBLIC: configMap['DOCS_PUBLIC'] ?? '' } });
      worker = new ServiceHttpServer({
        host: '127.0.0.1',
        port: 0,
        metrics: { metrics: createMetrics({ defaultMetrics: false }), token: undefined },
        readiness: () => Promise.resolve({ ready: true, checks: {} }),
      });
      await worker.start();
    });
    afterAll(async () => {
      await worker?.stop();
      await stack?.stop();
    });

    it('on the api and the worker ports of the ConfigMap', async () => {
      const servers = { api: { url: stack.apiUrl, port: configMap['PORT'] }, worker: { url: worker.url, port: configMap['WORKER_METRICS_PORT'] } };
      for (const [role, d] of Object.entries(deployments) as ['api' | 'worker', Resource][]) {
        const c = containerOf(d);
        const probes = [c.readinessProbe, c.livenessProbe, c.startupProbe].filter((p): p is Probe => p !== undefined);
        expect(probes.map((p) => p.httpGet.path).sort(), role).toEqual(expect.arrayContaining(['/healthz', '/readyz']));
        for (const p of probes) {
          expect(String(p.httpGet.port), role).toBe(servers[role].port);
          const res = await fetch(`${servers[role].url}${p.httpGet.path}`);
          expect(res.status, `${role} ${p.httpGet.path}`).toBe(200);
        }
        expect(c.ports.map((p) => String(p.containerPort))).toContain(servers[role].port);
      }
    });

    it('answers 404 for /metrics, /docs and /openapi.json on the port the Service reaches; /metrics on its own', async () => {
      for (const p of ['/metrics', '/docs', '/openapi.json']) expect((await fetch(`${stack.apiUrl}${p}`)).status, p).toBe(404);
      expect((await fetch(stack.metricsUrl)).status).toBe(200);
    });
  });
});

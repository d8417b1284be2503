// deploy/: the systemd unit, the Dockerfile and the Kubernetes manifests, checked without a
// systemd, docker daemon or cluster: parsed and validated against what `upcase serve` accepts.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { type ParsedServeFlags, parseServeArgs } from '../../src/cli/serve.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string): string => readFileSync(join(root, path), 'utf8');

before(() => {
  // The flags below must stand on their own, whatever the environment of the test run.
  for (const key of Object.keys(process.env)) if (key.startsWith('UPCASE_')) delete process.env[key];
});

/** Parses serve flags exactly as `upcase serve` does; rejects on an unknown flag or a bad value. */
async function serveFlags(args: string[]): Promise<ParsedServeFlags> {
  try {
    return await parseServeArgs(args);
  } catch (err) {
    throw new Error(`\`upcase serve ${args.join(' ')}\` does not parse: ${(err as Error).message}`);
  }
}

describe('deploy/systemd/upcase.service', () => {
  const path = 'deploy/systemd/upcase.service';
  const text = read(path);
  const units = parseUnit(text);
  const service = units.get('Service')!;

  it('is valid for systemd-analyze verify, or at least well-formed with known keys', () => {
    const verify = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
    if (verify.status === 0) {
      // verify needs ExecStart's binary to exist: point it at this node for the check.
      const dir = mkdtempSync(join(tmpdir(), 'upcase-unit-'));
      try {
        const copy = join(dir, 'upcase.service');
        writeFileSync(copy, text.replace('ExecStart=/usr/bin/node ', `ExecStart=${process.execPath} `));
        const result = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' });
        const complaints = `${result.stdout}\n${result.stderr}`.split('\n').filter((l) => l.includes('upcase.service'));
        assert.equal(result.status, 0, result.stderr);
        assert.deepEqual(complaints, [], 'systemd-analyze verify complained');
        // The hardening as systemd itself scores it: exposure 0 (locked down) to 10 (exposed), threshold in tenths.
        const security = spawnSync('systemd-analyze', ['security', '--offline=yes', '--threshold=25', copy], { encoding: 'utf8' });
        if (!/unrecognized option|unknown option/i.test(security.stderr))
          assert.equal(security.status, 0, security.stdout + security.stderr);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    // Without systemd (and with it too): every line is a section, a comment, or a known key.
    const known: Record<string, string[]> = {
      Unit: ['Description', 'Documentation', 'After', 'Wants', 'Requires', 'Before'],
      Service: [
        'Type',
        'ExecStart',
        'EnvironmentFile',
        'Environment',
        'KillSignal',
        'KillMode',
        'TimeoutStopSec',
        'Restart',
        'RestartSec',
        'LimitNOFILE',
        'DynamicUser',
        'CapabilityBoundingSet',
        'AmbientCapabilities',
        'NoNewPrivileges',
        'ProtectSystem',
        'ProtectHome',
        'PrivateTmp',
        'PrivateDevices',
        'ProtectKernelTunables',
        'ProtectKernelModules',
        'ProtectKernelLogs',
        'ProtectControlGroups',
        'ProtectClock',
        'ProtectHostname',
        'ProtectProc',
        'RestrictAddressFamilies',
        'RestrictNamespaces',
        'RestrictRealtime',
        'RestrictSUIDSGID',
        'LockPersonality',
        'SystemCallArchitectures',
        'SystemCallFilter',
        'SystemCallErrorNumber',
        'MemoryDenyWriteExecute',
        'UMask',
      ],
      Install: ['WantedBy'],
    };
    assert.deepEqual([...units.keys()], ['Unit', 'Service', 'Install']);
    for (const [section, keys] of units) {
      for (const key of keys.keys()) assert.ok(known[section].includes(key), `[${section}] ${key} is not a key this test knows`);
    }
  });

  it('is hardened, and needs no capability', () => {
    const expect: Record<string, string> = {
      DynamicUser: 'yes',
      NoNewPrivileges: 'yes',
      ProtectSystem: 'strict',
      ProtectHome: 'yes',
      PrivateTmp: 'yes',
      PrivateDevices: 'yes',
      RestrictAddressFamilies: 'AF_INET AF_INET6 AF_UNIX',
      CapabilityBoundingSet: '',
      SystemCallFilter: '@system-service',
      MemoryDenyWriteExecute: 'no',
      Restart: 'on-failure',
      KillSignal: 'SIGTERM',
    };
    for (const [key, value] of Object.entries(expect)) assert.equal(service.get(key), value, key);
    assert.ok(Number(service.get('LimitNOFILE')) >= 10_000);
    // Why W+X memory stays allowed is written next to it.
    assert.match(text, /#[^\n]*JIT[^\n]*\nMemoryDenyWriteExecute=no/);
  });

  it('runs `upcase serve` with flags that exist, and waits longer than the drain', async () => {
    const exec = service.get('ExecStart')!.split(/\s+/);
    assert.equal(exec[0], '/usr/bin/node');
    assert.match(exec[1], /bin\/upcase\.js$/);
    assert.equal(exec[2], 'serve');
    const flags = await serveFlags(exec.slice(3));
    assert.equal(flags.port, 12000);
    assert.ok(Number(service.get('TimeoutStopSec')) > flags.drainTimeout + 5, 'TimeoutStopSec leaves time to drain and exit');
  });
});

describe('deploy/docker/Dockerfile', () => {
  const instructions = parseDockerfile(read('deploy/docker/Dockerfile'));
  const stages = splitStages(instructions);
  const final = stages.at(-1)!;
  const last = (name: string): string | undefined => final.filter((i) => i.name === name).at(-1)?.args;

  it('builds in stages from node:20-slim and installs only runtime dependencies in the image', () => {
    assert.ok(stages.length >= 2, 'multi-stage');
    for (const stage of stages) assert.match(stage[0].args, /^node:20-slim\b/);
    assert.ok(
      final.some((i) => i.name === 'RUN' && /npm ci\b.*--omit=dev/.test(i.args)),
      'npm ci --omit=dev in the final stage',
    );
    assert.ok(
      final.some((i) => i.name === 'COPY' && /^--from=\S+ \/app\/dist /.test(i.args)),
      'dist/ comes from the build stage',
    );
    assert.ok(stages[0].some((i) => i.name === 'RUN' && /npm (ci|run build)/.test(i.args)));
    // Everything copied from the build context exists in the repository.
    for (const copy of instructions.filter((i) => i.name === 'COPY' && !i.args.startsWith('--from'))) {
      const sources = copy.args.split(/\s+/).slice(0, -1);
      for (const source of sources) assert.ok(existsSync(join(root, source)), `COPY source ${source} exists`);
    }
  });

  it("the build stage has every file npm ci's install scripts need, and the image gets the native transports", () => {
    const build = stages[0]!;
    const copied = build.filter((i) => i.name === 'COPY' && !i.args.startsWith('--from')).flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    const has = (path: string): boolean => copied.some((source) => path === source || path.startsWith(`${source.replace(/\/$/, '')}/`));
    const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;
    for (const hook of ['preinstall', 'install', 'postinstall', 'prepare']) {
      const files = (scripts[hook] ?? '').split(/\s+/).filter((word) => /\.(m?js|json)$/.test(word));
      for (const file of files) assert.ok(has(file), `the \`${hook}\` script needs ${file}, which the build stage does not copy`);
    }
    // What node-gyp and the compiler read.
    for (const file of ['binding.gyp', 'native/tcp_serve.c', 'native/codec.c', 'native/udp_batch.c'])
      assert.ok(has(file), `${file} is copied`);
    assert.ok(
      build.some((i) => i.name === 'RUN' && /\bg\+\+|\bgcc\b|build-essential/.test(i.args)),
      'a C compiler in the build stage',
    );
    assert.ok(
      final.some((i) => i.name === 'COPY' && /^--from=\S+ \/app\/build\/Release /.test(i.args)),
      'the addons come from the build stage',
    );
    // The build context is an allow-list (Dockerfile.dockerignore): everything copied must be on it.
    const allowed = read('deploy/docker/Dockerfile.dockerignore')
      .split('\n')
      .filter((line) => line.startsWith('!'))
      .map((line) => line.slice(1).replace(/\/$/, ''));
    for (const source of copied) {
      const path = source.replace(/\/$/, '');
      assert.ok(
        allowed.some((a) => path === a || path.startsWith(`${a}/`)),
        `${source} is on the .dockerignore allow-list`,
      );
    }
  });

  it('runs as a non-root user, signal-safe, with exec-form ENTRYPOINT and CMD', async () => {
    const user = last('USER');
    assert.ok(user !== undefined && !/^(root|0)(:|$)/.test(user), `USER ${user} is not root`);
    assert.equal(last('STOPSIGNAL'), 'SIGTERM');
    const entrypoint = JSON.parse(last('ENTRYPOINT')!) as string[]; // throws unless exec form
    const cmd = JSON.parse(last('CMD')!) as string[];
    assert.deepEqual(entrypoint, ['node', 'bin/upcase.js', 'serve']);
    const flags = await serveFlags(cmd);
    assert.notEqual(flags.metricsPort, undefined, 'the image serves its health endpoint');
    assert.notEqual(flags.metricsHost, '127.0.0.1', 'reachable through a published port');

    const expose = last('EXPOSE')!.split(/\s+/);
    for (const port of ['12000/tcp', '12000/udp', `${flags.metricsPort}/tcp`]) assert.ok(expose.includes(port), `EXPOSE ${port}`);

    const healthcheck = last('HEALTHCHECK')!;
    const json = healthcheck.slice(healthcheck.indexOf('CMD ') + 4);
    const probe = (JSON.parse(json) as string[]).join(' ');
    assert.ok(probe.includes(`http://127.0.0.1:${flags.metricsPort}/healthz`), probe);
  });
});

describe('deploy/kubernetes', () => {
  const docs = ['deploy/kubernetes/deployment.yaml', 'deploy/kubernetes/service.yaml'].flatMap((file) =>
    parseAllDocuments(read(file)).map((d) => {
      assert.deepEqual(d.errors, [], file);
      return d.toJS() as K8s;
    }),
  );
  const deployment = docs.find((d) => d.kind === 'Deployment')!;
  const service = docs.find((d) => d.kind === 'Service')!;
  const pod = deployment?.spec.template;
  const container = pod?.spec.containers[0];

  it('has a Deployment and a Service that selects its pods', () => {
    assert.ok(deployment && service);
    assert.equal(deployment.apiVersion, 'apps/v1');
    assert.equal(service.apiVersion, 'v1');
    for (const [k, v] of Object.entries(service.spec.selector)) assert.equal(pod.metadata.labels[k], v);
    for (const [k, v] of Object.entries(deployment.spec.selector.matchLabels)) assert.equal(pod.metadata.labels[k], v);
  });

  it('exposes TCP and UDP 12000 in one Service, onto the container ports of the same protocol', () => {
    const ports = service.spec.ports as Array<{ port: number; protocol: string; targetPort: string | number }>;
    assert.deepEqual(ports.map((p) => `${p.port}/${p.protocol}`).sort(), ['12000/TCP', '12000/UDP']);
    for (const p of ports) {
      const target = containerPort(container, p.targetPort, p.protocol);
      assert.equal(target.containerPort, 12000);
    }
  });

  it('runs serve flags that exist, with probes on the metrics port paths', async () => {
    const flags = await serveFlags(container.args);
    assert.equal(flags.port, 12000);
    assert.notEqual(flags.metricsPort, undefined);
    assert.notEqual(flags.metricsHost, '127.0.0.1', 'the kubelet probes the pod IP');
    for (const env of container.env ?? []) {
      assert.match(env.name, /^UPCASE_/);
      // Each variable is one that serve reads: parse it the way serve would.
      process.env[env.name] = env.value;
      try {
        await serveFlags([]);
      } finally {
        delete process.env[env.name];
      }
    }
    const probes = { livenessProbe: '/healthz', readinessProbe: '/readyz' } as const;
    for (const [probe, path] of Object.entries(probes)) {
      const get = container[probe].httpGet;
      assert.equal(get.path, path, probe);
      assert.equal(containerPort(container, get.port, 'TCP').containerPort, flags.metricsPort, `${probe} on the metrics port`);
    }
    assert.equal(pod.metadata.annotations['prometheus.io/port'], String(flags.metricsPort));
  });

  it('removes the endpoint before draining, and gives the drain time to finish', async () => {
    const flags = await serveFlags(container.args);
    const preStop = container.lifecycle.preStop;
    const sleep = preStop.sleep?.seconds ?? Number((preStop.exec.command as string[]).join(' ').match(/^sleep (\d+)$/)?.[1]);
    assert.ok(sleep >= 1, 'preStop sleeps');
    assert.ok(pod.spec.terminationGracePeriodSeconds > sleep + flags.drainTimeout + 2, 'grace period > preStop + drain');
  });

  it('runs non-root, read-only, with no capabilities', () => {
    assert.equal(pod.spec.securityContext.runAsNonRoot, true);
    assert.notEqual(pod.spec.securityContext.runAsUser, 0);
    const sc = container.securityContext;
    assert.equal(sc.readOnlyRootFilesystem, true);
    assert.equal(sc.allowPrivilegeEscalation, false);
    assert.deepEqual(sc.capabilities.drop, ['ALL']);
    assert.equal(sc.capabilities.add, undefined);
  });
});

// Manifests are checked field by field below; a full Kubernetes type would add nothing.
// biome-ignore lint/suspicious/noExplicitAny: manifests are checked field by field below
type K8s = any;

function containerPort(container: K8s, port: string | number, protocol: string): { containerPort: number } {
  const ports = container.ports as Array<{ name?: string; containerPort: number; protocol?: string }>;
  const found = ports.find(
    (p) => (typeof port === 'number' ? p.containerPort === port : p.name === port) && (p.protocol ?? 'TCP') === protocol,
  );
  assert.ok(found, `container port ${port}/${protocol}`);
  return found;
}

/** `[Section]` → key → value. Repeated keys keep the last value (enough for this unit). */
function parseUnit(text: string): Map<string, Map<string, string>> {
  const sections = new Map<string, Map<string, string>>();
  let current: Map<string, string> | undefined;
  for (const [n, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = line.match(/^\[([A-Za-z]+)\]$/);
    if (header) {
      current = new Map();
      sections.set(header[1], current);
      continue;
    }
    const kv = line.match(/^([A-Za-z]+)=(.*)$/);
    assert.ok(kv && current, `line ${n + 1} is not Key=Value inside a section: ${raw}`);
    current.set(kv[1], kv[2]);
  }
  return sections;
}

interface Instruction {
  name: string;
  args: string;
}

/** Dockerfile instructions, with comments dropped and continuation lines joined. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    if (pending === '' && /^\s*#/.test(raw)) continue;
    if (/\\\s*$/.test(raw)) {
      pending += raw.replace(/\\\s*$/, ' ');
      continue;
    }
    const line = (pending + raw).trim();
    pending = '';
    if (line === '') continue;
    const m = line.match(/^([A-Za-z]+)\s+(.*)$/);
    assert.ok(m, `not an instruction: ${line}`);
    out.push({ name: m[1].toUpperCase(), args: m[2].trim().replace(/\s+/g, ' ') });
  }
  return out;
}

function splitStages(instructions: Instruction[]): Instruction[][] {
  const stages: Instruction[][] = [];
  for (const i of instructions) {
    if (i.name === 'FROM') stages.push([]);
    assert.ok(stages.length > 0, 'FROM comes first');
    stages.at(-1)!.push(i);
  }
  return stages;
}

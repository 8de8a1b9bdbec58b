import { type Browser } from '@playwright/test';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import WebSocket from 'ws';
import { expectLive } from './support';

const root = path.resolve(__dirname, '..', '..');
const run = promisify(execFile);
const basePort = Number(process.env.TANDEM_E2E_PORT ?? 3100);

/**
 * The fixed ports of cluster.spec.ts, clear of the other specs' (+20, +30, +40). PostgreSQL and
 * Redis take free ports the kernel hands out, never their usual 5432 and 6379.
 */
export const clusterPorts = { a: basePort + 50, b: basePort + 51, proxy: basePort + 52 };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A loopback port nothing listens on now. */
async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = net.createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as net.AddressInfo;
        server.close(() => resolve(port));
      });
    });
    // The real servers' usual ports are left to them, whatever the kernel hands out.
    if (port !== 5432 && port !== 6379) return port;
  }
}

/** Whether something already listens on the loopback `port`. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Every daemon still running, killed with its group if the worker exits without its afterAll. */
const running = new Set<Daemon>();
process.on('exit', () => {
  for (const daemon of running) daemon.signalGroup('SIGKILL');
});

/**
 * A long-running child in a process group of its own, killed with its group so that nothing it
 * started outlives it (PostgreSQL's backends leave the group, but the postmaster stops them on
 * its fast shutdown, and they end by themselves when it dies). The end of what it wrote is kept,
 * both streams as one (Tandem logs on stdout; panics and the others' complaints come on
 * stderr): it explains an exit.
 */
export class Daemon {
  private said = '';
  private partialLine = '';
  private stopping = false;
  /** Lines it wrote that match what it was told to watch for, since they were last taken. */
  private noticed: string[] = [];
  private readonly child: ChildProcess;
  readonly exited: Promise<void>;

  constructor(
    readonly name: string,
    command: string,
    args: string[],
    options: { cwd?: string; env?: NodeJS.ProcessEnv; uid?: number; gid?: number; watch?: RegExp } = {},
  ) {
    const { watch: _, ...spawnOptions } = options;
    this.child = spawn(command, args, { ...spawnOptions, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(this);
    const keep = (chunk: Buffer) => {
      this.said = (this.said + chunk.toString()).slice(-256_000);
      if (!options.watch) return;
      const lines = (this.partialLine + chunk.toString()).split('\n');
      this.partialLine = lines.pop() ?? '';
      for (const line of lines) if (options.watch.test(line) && this.noticed.length < 100) this.noticed.push(line);
    };
    this.child.stdout?.on('data', keep);
    this.child.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', () => resolve());
      // A command that cannot be started emits `error` and no `exit`.
      this.child.once('error', (error) => {
        this.said += `\n${error}`;
        resolve();
      });
    });
    this.exited.then(() => running.delete(this));
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null && this.child.pid !== undefined;
  }

  /** What it wrote on stdout and stderr (the last 256 kB). */
  get output(): string {
    return this.said;
  }

  /** The watched-for lines it wrote since the last call. */
  takeNoticed(): string[] {
    return this.noticed.splice(0);
  }

  /** Why it is gone, if it went without being told to. */
  unexpectedExit(): string | undefined {
    if (this.alive || this.stopping) return undefined;
    return `${this.name} exited (${this.child.exitCode ?? this.child.signalCode}): ${this.said}`;
  }

  signalGroup(signal: NodeJS.Signals) {
    if (this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, signal);
    } catch {}
  }

  /** SIGKILL to the whole group: no chance to finish anything, as when a machine dies. */
  async kill() {
    this.stopping = true;
    this.signalGroup('SIGKILL');
    await this.exited;
  }

  /**
   * Asks the leader to stop with `signal`; after `patienceMs`, or once it is gone, the whole
   * group is killed so that nothing it started outlives it.
   */
  async stop(signal: NodeJS.Signals = 'SIGTERM', patienceMs = 10_000) {
    this.stopping = true;
    if (this.alive) {
      try {
        this.child.kill(signal);
      } catch {}
      await Promise.race([this.exited, sleep(patienceMs)]);
    }
    this.signalGroup('SIGKILL');
    await this.exited;
  }
}

/** Polls `ready` until it holds, failing at once with what the daemon said if it exits. */
async function waitUntil(daemon: Daemon, what: string, ready: () => Promise<boolean>, patienceMs = 30_000) {
  const deadline = Date.now() + patienceMs;
  while (Date.now() < deadline) {
    if (!daemon.alive) throw new Error(`${daemon.name} exited while starting: ${daemon.output}`);
    if (await ready().catch(() => false)) return;
    await sleep(50);
  }
  throw new Error(`${daemon.name} did not become ${what} in ${patienceMs} ms: ${daemon.output}`);
}

/** Where Debian puts PostgreSQL's programs: the newest major version installed. */
function postgresBin(): string {
  const versions = existsSync('/usr/lib/postgresql') ? readdirSync('/usr/lib/postgresql') : [];
  const found = versions
    .filter((version) => existsSync(`/usr/lib/postgresql/${version}/bin/postgres`))
    .sort((x, y) => Number(x) - Number(y));
  if (found.length === 0) throw new Error('no PostgreSQL under /usr/lib/postgresql (scripts/setup.sh --test installs it)');
  return `/usr/lib/postgresql/${found[found.length - 1]}/bin`;
}

/**
 * PostgreSQL refuses to run as root: as root, the cluster is made and run as the `postgres`
 * user the Debian package creates. The switch happens in the child itself (spawn's uid and
 * gid), so no `runuser` stands between this process and the server's signals.
 */
async function postgresUser(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const id = async (flag: string) => Number((await run('id', [flag, 'postgres'])).stdout.trim());
  return { uid: await id('-u'), gid: await id('-g') };
}

/**
 * A PostgreSQL server of the spec's own: a cluster made with initdb in a temporary directory,
 * listening on a free loopback port and on a Unix socket in that directory, trusting its
 * superuser `tandem`.
 */
export class PrivatePostgres {
  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly bin: string,
    readonly daemon: Daemon,
  ) {}

  static async start(): Promise<PrivatePostgres> {
    const bin = postgresBin();
    const user = await postgresUser();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tandem-e2e-pg-'));
    let daemon: Daemon | undefined;
    try {
      if (user) chownSync(dir, user.uid, user.gid);
      const data = path.join(dir, 'data');
      await new Promise<void>((resolve, reject) => {
        const initdb = spawn(
          `${bin}/initdb`,
          ['-D', data, '-U', 'tandem', '--auth=trust', '-E', 'UTF8', '--no-sync'],
          { ...user, stdio: ['ignore', 'ignore', 'pipe'] },
        );
        let said = '';
        initdb.stderr?.on('data', (chunk: Buffer) => (said += chunk.toString()));
        initdb.once('error', reject);
        initdb.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`initdb failed (${code}): ${said}`))));
      });
      const port = await freePort();
      daemon = new Daemon(
        'postgres',
        `${bin}/postgres`,
        ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off'],
        { ...user, cwd: dir },
      );
      const pg = new PrivatePostgres(dir, port, bin, daemon);
      await waitUntil(daemon, 'ready', async () => {
        await run(`${bin}/pg_isready`, ['-h', '127.0.0.1', '-p', String(port), '-U', 'tandem', '-d', 'postgres', '-q']);
        return true;
      });
      return pg;
    } catch (error) {
      await daemon?.stop('SIGINT');
      rmSync(dir, { recursive: true, force: true });
      throw error;
    }
  }

  /** Creates the database `name` and returns its URL. */
  async createDatabase(name: string): Promise<string> {
    await run(`${this.bin}/psql`, [
      '-h', '127.0.0.1', '-p', String(this.port), '-U', 'tandem', '-d', 'postgres',
      '-q', '-v', 'ON_ERROR_STOP=1', '-c', `CREATE DATABASE ${name}`,
    ]);
    return `postgres://tandem@127.0.0.1:${this.port}/${name}`;
  }

  /** Stops the server (SIGINT: PostgreSQL's fast shutdown) and removes its directory. */
  async dispose() {
    await this.daemon.stop('SIGINT');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Sends Redis an inline PING and tells whether it answered PONG. */
function redisPong(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let answer = '';
    const done = (pong: boolean) => {
      socket.destroy();
      resolve(pong);
    };
    socket.setTimeout(2000, () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString();
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG'));
    });
    socket.once('error', () => done(false));
  });
}

/** A Redis server of the spec's own on a free loopback port, keeping nothing on disk. */
export class PrivateRedis {
  private constructor(
    readonly dir: string,
    readonly port: number,
    readonly daemon: Daemon,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<PrivateRedis> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tandem-e2e-redis-'));
    const port = await freePort();
    const daemon = new Daemon(
      'redis-server',
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', dir],
      { cwd: dir },
    );
    try {
      await waitUntil(daemon, 'ready', () => redisPong(port));
    } catch (error) {
      await daemon.stop();
      rmSync(dir, { recursive: true, force: true });
      throw error;
    }
    return new PrivateRedis(dir, port, daemon);
  }

  async dispose() {
    await this.daemon.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * One Tandem instance of the cluster: the debug build, on its own port and data directory,
 * given the shared database and Redis through the environment, as a deployment would.
 */
export class TandemInstance {
  readonly url: string;
  readonly dataDir: string;
  private daemon: Daemon | undefined;
  /** What earlier runs of this instance wrote, before a kill and a restart. */
  private earlierLogs = '';
  private earlierTroubles: string[] = [];

  constructor(
    readonly name: string,
    readonly port: number,
    private readonly databaseUrl: string,
    private readonly redisUrl: string,
  ) {
    this.url = `http://127.0.0.1:${port}`;
    this.dataDir = mkdtempSync(path.join(os.tmpdir(), `tandem-e2e-cluster-${name}-`));
  }

  get alive(): boolean {
    return this.daemon?.alive ?? false;
  }

  /** Starts it and waits until it serves and is subscribed to Redis. */
  async start() {
    // Another process on the port would answer for this one.
    if (await listening(this.port)) throw new Error(`port ${this.port} for instance ${this.name} is already taken`);
    if (this.daemon) {
      this.earlierLogs += this.daemon.output;
      this.earlierTroubles.push(...this.daemon.takeNoticed());
    }
    const bin = process.env.TANDEM_BIN ?? path.join(root, 'target/debug/tandem');
    const daemon = new Daemon(
      `Tandem instance ${this.name}`,
      bin,
      ['--addr', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir],
      {
        cwd: root,
        env: {
          ...process.env,
          RUST_LOG: 'info',
          TANDEM_DATABASE_URL: this.databaseUrl,
          TANDEM_LINK_KEY: 'dGFuZGVtIHRlc3QgbGluayBrZXksIDMyIGJ5dGVzISE=',
          TANDEM_REDIS_URL: this.redisUrl,
        },
        watch: TandemInstance.trouble,
      },
    );
    this.daemon = daemon;
    // Until it is subscribed, changes from the other instance would reach it only through the
    // store's poll: the tests would pass without Redis carrying anything.
    await waitUntil(daemon, 'subscribed to Redis', async () => {
      const metrics = await fetch(`${this.url}/metrics`);
      return metrics.ok && /^tandem_redis_connected 1$/m.test(await metrics.text());
    });
  }

  /** `kill -9`: whatever it held in memory and had not stored is gone. */
  async kill() {
    await this.daemon?.kill();
  }

  unexpectedExit(): string | undefined {
    return this.daemon?.unexpectedExit();
  }

  /**
   * What a log line says when something went wrong: an error, a panic, or the subscription to
   * Redis lost. Redis stays up through these tests, so a lost subscription is a fault: changes
   * would then cross only through the store's poll, which the tests could not tell apart.
   */
  static readonly trouble = /\bERROR\b|panicked|subscription to Redis is down/;

  /** The troubled lines it logged since the last call. */
  takeTroubles(): string[] {
    return [...this.earlierTroubles.splice(0), ...(this.daemon?.takeNoticed() ?? [])];
  }

  /** Everything it wrote, over all its runs. */
  get logs(): string {
    return this.earlierLogs + (this.daemon?.output ?? '');
  }

  async dispose() {
    await this.daemon?.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** PostgreSQL, Redis and two Tandem instances A and B on them, all on loopback. */
export class Cluster {
  private constructor(
    readonly pg: PrivatePostgres,
    readonly redis: PrivateRedis,
    readonly a: TandemInstance,
    readonly b: TandemInstance,
  ) {}

  /** Starts everything; whatever started before a failure is stopped again. */
  static async start(): Promise<Cluster> {
    const started: { dispose(): Promise<void> }[] = [];
    try {
      const pg = await PrivatePostgres.start();
      started.push(pg);
      const database = await pg.createDatabase('tandem_e2e');
      const redis = await PrivateRedis.start();
      started.push(redis);
      const a = new TandemInstance('A', clusterPorts.a, database, redis.url);
      started.push(a);
      const b = new TandemInstance('B', clusterPorts.b, database, redis.url);
      started.push(b);
      await Promise.all([a.start(), b.start()]);
      return new Cluster(pg, redis, a, b);
    } catch (error) {
      for (const thing of started.reverse()) await thing.dispose().catch(() => {});
      throw error;
    }
  }

  /** Starts again an instance a test killed on purpose, so the next test has both. */
  async restoreInstances() {
    for (const instance of [this.a, this.b]) if (!instance.alive) await instance.start();
  }

  /** Throws with what it said if anything of the cluster went away without being told to. */
  assertRunning() {
    const gone = [this.pg.daemon.unexpectedExit(), this.redis.daemon.unexpectedExit(), this.a.unexpectedExit(), this.b.unexpectedExit()]
      .filter((why) => why !== undefined);
    if (gone.length > 0) throw new Error(gone.join('\n\n'));
  }

  /** What the instances logged as going wrong since the last call (see `TandemInstance.trouble`). */
  takeTroubles(): string[] {
    return [this.a, this.b].flatMap((instance) => instance.takeTroubles().map((line) => `${instance.name}: ${line}`));
  }

  /** The instances' logs, for a failed test's report. */
  logs(): string {
    return `--- instance A ---\n${this.a.logs}\n--- instance B ---\n${this.b.logs}\n--- postgres ---\n${this.pg.daemon.output}`;
  }

  /** Stops the instances before what they use, and removes every directory. */
  async dispose() {
    const results = await Promise.allSettled([this.a.dispose(), this.b.dispose()]);
    results.push(...(await Promise.allSettled([this.redis.dispose(), this.pg.dispose()])));
    const failed = results.find((result) => result.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }
}

/** A stock Yjs client (yjs + y-websocket over `ws`) on one instance, as any Yjs app connects. */
export class StockClient {
  readonly doc = new Y.Doc();
  readonly provider: WebsocketProvider;

  private constructor(serverUrl: string, id: string) {
    this.provider = new WebsocketProvider(serverUrl.replace(/^http/, 'ws') + '/ws', id, this.doc, {
      WebSocketPolyfill: WebSocket as any,
      disableBc: true,
    });
  }

  /** Connects to the instance at `serverUrl` and waits until it has the document's state. */
  static async join(serverUrl: string, id: string): Promise<StockClient> {
    const client = new StockClient(serverUrl, id);
    await new Promise<void>((resolve) => {
      const onSync = (synced: boolean) => {
        if (!synced) return;
        client.provider.off('sync', onSync);
        resolve();
      };
      client.provider.on('sync', onSync);
    });
    return client;
  }

  get text(): Y.Text {
    return this.doc.getText('content');
  }

  destroy() {
    this.provider.destroy();
    this.doc.destroy();
  }
}

/** Opens a document at `serverUrl` (an instance, or a proxy to one) in a new browser context. */
export async function openDocAt(browser: Browser, serverUrl: string, id: string) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${serverUrl}/d/${id}`);
  await expectLive(page);
  return { context, page };
}

/**
 * A loopback TCP proxy in front of an instance, as a load balancer stands before several:
 * each connection is piped to the current target, and goes when either end of it goes, so a
 * dead instance's clients see their connection drop. The target can be switched.
 */
export class SwitchableProxy {
  private server: net.Server | undefined;
  private readonly connections = new Set<net.Socket>();

  constructor(
    readonly port: number,
    private target: number,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async listen() {
    const server = net.createServer((client) => this.pipe(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.server = server;
  }

  private pipe(client: net.Socket) {
    const upstream = net.connect(this.target, '127.0.0.1');
    for (const socket of [client, upstream]) {
      this.connections.add(socket);
      socket.once('close', () => {
        this.connections.delete(socket);
        client.destroy();
        upstream.destroy();
      });
      // A reset or a refused connection closes both; `close` follows.
      socket.on('error', () => {});
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** New connections go to `port` from now on; the existing ones are cut. */
  switchTo(port: number) {
    this.target = port;
    for (const socket of this.connections) socket.destroy();
  }

  async close() {
    for (const socket of this.connections) socket.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

// Test helper: builds readreceiptd from this repository and runs it on a
// free loopback port in a temporary data directory, with a known secret so
// that the tests can sign tokens the way the server documents them.

import { spawn, execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const repoRoot = resolve(import.meta.dirname, '../../..');
export const SECRET = 'client-test-secret-0123456789abcdef';
export const ADMIN = 'administrator';

let built = '';

// build compiles ./cmd/readreceiptd once per test process.
export function build() {
  if (built) return built;
  const dir = mkdtempSync(join(tmpdir(), 'readreceiptd-bin-'));
  const bin = join(dir, 'readreceiptd');
  execFileSync('go', ['build', '-o', bin, './cmd/readreceiptd'], { cwd: repoRoot, stdio: ['ignore', 'inherit', 'inherit'] });
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  built = bin;
  return bin;
}

export function freePort() {
  return new Promise((ok, bad) => {
    const s = createServer();
    s.on('error', bad);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

// token signs a readreceiptd token for user, valid for ttlSeconds: the
// base64url JSON {"u","exp"}, a dot, the base64url HMAC-SHA256 of the first
// part under the secret (openapi.yaml, "Authentication").
export function token(user, { secret = SECRET, ttlSeconds = 3600 } = {}) {
  const p = Buffer.from(JSON.stringify({ u: user, exp: Math.floor(Date.now() / 1000) + ttlSeconds })).toString('base64url');
  return p + '.' + createHmac('sha256', secret).update(p).digest('base64url');
}

// Server is one readreceiptd process; restart() kills it and starts it again
// on the same port and data directory.
export class Server {
  constructor({ port, dataDir, secret = SECRET }) {
    this.port = port;
    this.dataDir = dataDir;
    this.secret = secret;
    this.base = `http://127.0.0.1:${port}`;
    this.proc = null;
    this.logs = '';
  }

  static async start(opts = {}) {
    const port = await freePort();
    const dataDir = mkdtempSync(join(tmpdir(), 'readreceiptd-data-'));
    const s = new Server({ port, dataDir, ...opts });
    await s.#spawn();
    return s;
  }

  async #spawn() {
    const bin = build();
    const proc = spawn(bin, ['-addr', `127.0.0.1:${this.port}`, '-data', this.dataDir, '-secret', this.secret], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    proc.stderr.on('data', (b) => { this.logs += b; });
    this.proc = proc;
    this.exited = new Promise((ok) => proc.on('exit', (code, signal) => ok({ code, signal })));
    const deadline = Date.now() + 30000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`readreceiptd exited at start:\n${this.logs}`);
      try {
        const r = await fetch(this.base + '/healthz');
        if (r.ok) return;
      } catch (_) {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`readreceiptd did not come up in 30s:\n${this.logs}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  // kill stops the process by its PID: SIGKILL, as a crash would, or SIGTERM.
  async kill(signal = 'SIGKILL') {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    process.kill(this.proc.pid, signal);
    await this.exited;
  }

  async restart({ secret } = {}) {
    await this.kill('SIGKILL');
    if (secret) this.secret = secret;
    await this.#spawn();
  }

  async stop() {
    await this.kill('SIGTERM');
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  token(user, opts = {}) {
    return token(user, { secret: this.secret, ...opts });
  }

  // admin makes a host-side call (groups, tracking) as the administrator.
  async admin(method, path, body) {
    const r = await fetch(this.base + path, {
      method,
      headers: { Authorization: 'Bearer ' + this.token(ADMIN), 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const j = await r.json();
    if (j.code !== 0) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(j)}`);
    return j.data;
  }

  createGroup(groupID, memberList, type = 'Work') {
    return this.admin('POST', '/v1/groups', { groupID, type, memberList });
  }

  // track registers a sent message that asks for receipts, and returns it
  // as the SDK's Message object.
  async track(m) {
    const msg = { needReadReceipt: true, ...m };
    await this.admin('POST', '/v1/messages', msg);
    return msg;
  }
}

// Starting and stopping a director of a test's own (the global setup's, or a second one with
// other flags): on its embedded PostgreSQL in a temporary data directory, its Docker objects in
// a namespace of its own.
import { execSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

/** A free port on 127.0.0.1, picked below the kernel's ephemeral range (32768 and up): a port
 *  the kernel handed out could go to any outgoing connection before its server binds it. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 10000 + Math.floor(Math.random() * 22768);
    const free = await new Promise<boolean>((resolve) => {
      const server = net.createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error('no free port on 127.0.0.1');
}

/** Starts `director serve` with `args` (after --data-dir and serve), its log written to `log`;
 *  resolves with its pid and its standard output so far once it says where it runs. */
export function startDirector(dataDir: string, namespace: string, args: string[], log: string): Promise<{ pid: number; out: string }> {
  const bin = process.env.DIRECTOR_BIN;
  if (!bin) throw new Error('DIRECTOR_BIN must name the director binary (scripts/test sets it)');
  fs.mkdirSync(path.dirname(log), { recursive: true });
  const child = spawn(bin, ['--data-dir', dataDir, 'serve', ...args], {
    stdio: ['ignore', 'pipe', fs.openSync(log, 'w')],
    detached: true,
    env: { ...process.env, DATABASE_URL: '', DIRECTOR_NAMESPACE: namespace },
  });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      // Nothing of it is left running: its whole process group goes.
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // Gone already.
      }
      reject(new Error(`director did not start in 60 s:\n${out}`));
    }, 60_000);
    child.on('error', (err) => reject(err));
    child.on('exit', (code) => reject(new Error(`director exited with ${code}:\n${out}`)));
    child.stdout.on('data', (chunk) => {
      out += chunk;
      if (/Director is running at (\S+)/.test(out) && /(http\S+\/setup\?token=\S+)/.test(out)) {
        clearTimeout(timer);
        child.unref();
        resolve({ pid: child.pid!, out });
      }
    });
  });
}

// Everything the run made in Docker carries its namespace label; the sites' mount is the host's.
function removeDockerObjects(namespace: string) {
  const docker = fs.existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker';
  const label = `--filter label=director.namespace=${namespace}`;
  const run = (cmd: string) => {
    try {
      return execSync(cmd, { encoding: 'utf8' }).trim();
    } catch {
      return '';
    }
  };
  const each = (list: string, remove: string) => {
    for (const id of list.split('\n').filter(Boolean)) run(`${docker} ${remove} ${id}`);
  };
  each(run(`${docker} service ls -q ${label}`), 'service rm');
  each(run(`${docker} ps -aq ${label}`), 'rm -f');
  each(run(`${docker} secret ls -q ${label}`), 'secret rm');
  for (let i = 0; i < 50; i++) {
    const networks = run(`${docker} network ls -q ${label}`);
    if (!networks) break;
    each(networks, 'network rm');
    execSync('sleep 0.2');
  }
}

/** Stops the director `pid` (SIGTERM: it stops its embedded PostgreSQL), removes what it made in
 *  Docker and its mounts, then its data directory. */
export async function stopDirector(pid: number, dataDir: string, namespace: string) {
  const signal = (to: number, name: NodeJS.Signals | 0) => {
    try {
      process.kill(to, name);
      return true;
    } catch {
      return false;
    }
  };
  signal(pid, 'SIGTERM');
  for (let i = 0; i < 150 && signal(pid, 0); i++) await new Promise((r) => setTimeout(r, 100));
  // Still there after 15 s: its whole process group (its PostgreSQL too) is killed, and waited
  // for, before its data goes.
  if (signal(pid, 0)) {
    signal(-pid, 'SIGKILL');
    for (let i = 0; i < 50 && signal(pid, 0); i++) await new Promise((r) => setTimeout(r, 100));
  }
  removeDockerObjects(namespace);
  // Director's mounts: Caddy's view of the sites and its staging place, the sites' disks under
  // their tmpfs, and what moving directories onto disks uses.
  for (const mount of ['edge/sites', 'edge/stage', 'sites', 'disks/old-sites', 'disks/stage']) {
    try {
      execSync(`umount --recursive --lazy ${path.join(dataDir, mount)}`, { stdio: 'ignore' });
    } catch {
      // Not mounted.
    }
  }
  fs.rmSync(dataDir, { recursive: true, force: true });
}

// Stops the director (SIGTERM: it stops its embedded PostgreSQL) and removes its data.
import { execSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { server } from './server';

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
  for (let i = 0; i < 50; i++) {
    const networks = run(`${docker} network ls -q ${label}`);
    if (!networks) break;
    each(networks, 'network rm');
    execSync('sleep 0.2');
  }
}

export default async function globalTeardown() {
  const { pid, dataDir, namespace, dnsPid, oidcPid, mailPid, hooksPid } = server();
  for (const helper of [dnsPid, oidcPid, mailPid, hooksPid]) {
    try {
      process.kill(helper, 'SIGTERM');
    } catch {
      // Gone already.
    }
  }
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
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

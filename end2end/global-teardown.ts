// Stops the director (SIGTERM: it stops its embedded PostgreSQL) and removes its data, and the
// helpers the global setup started.
import { server } from './server';
import { stopDirector } from './director';

export default async function globalTeardown() {
  const { pid, dataDir, namespace, dnsPid, oidcPid, mailPid, hooksPid } = server();
  for (const helper of [dnsPid, oidcPid, mailPid, hooksPid]) {
    try {
      process.kill(helper, 'SIGTERM');
    } catch {
      // Gone already.
    }
  }
  await stopDirector(pid, dataDir, namespace);
}

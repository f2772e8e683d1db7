// Stops the director (SIGTERM: it stops its embedded PostgreSQL) and removes its data.
import * as fs from 'node:fs';
import { server } from './server';

export default async function globalTeardown() {
  const { pid, dataDir } = server();
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  fs.rmSync(dataDir, { recursive: true, force: true });
}

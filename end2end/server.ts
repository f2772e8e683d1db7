// Where the director started by global-setup.ts listens, shared with the tests through a file
// (global setup runs in another process).
import * as fs from 'node:fs';
import * as path from 'node:path';

export const stateFile = path.join(__dirname, '.state', 'server.json');

export interface ServerState {
  pid: number;
  baseURL: string;
  setupLink: string;
  dataDir: string;
  edgePort: number;
  namespace: string;
  /** The test DNS server (pebble-challtestsrv): its pid and management API. */
  dnsPid: number;
  dnsManagement: string;
  /** The test identity provider (end2end/oidc-provider.mjs): its pid and its people's file. */
  oidcPid: number;
  oidcAccounts: string;
  /** Its issuer URL, and the file holding Director's client secret there. */
  oidcIssuer: string;
  oidcSecret: string;
  /** The test mail server (npm maildev): its pid and the REST API listing what it received. */
  mailPid: number;
  mailApi: string;
  /** The test webhook endpoint (end2end/webhook-receiver.py): its pid and address. */
  hooksPid: number;
  hooks: string;
}

/** A site's address on the edge this run started. */
export function siteURL(name: string): string {
  return `http://${name}.localhost:${server().edgePort}/`;
}

export function server(): ServerState {
  return JSON.parse(fs.readFileSync(stateFile, 'utf8'));
}

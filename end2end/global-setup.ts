// Starts a fresh director with its own embedded PostgreSQL in a temporary data directory, on a
// free port, and records its URL and first-run setup link for the tests.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort, startDirector } from './director';
import { stateFile, ServerState } from './server';

export default async function globalSetup() {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'director-e2e-'));
  // The edge on a free port, and every Docker object in a namespace of the run's own.
  const edgePort = await freePort();
  const namespace = `e2e${process.pid}`;
  // A DNS server of the run's own (pebble's challenge test server), where the domain tests put
  // the TXT records that verify a domain; Director asks it instead of the system's resolver.
  const [dnsPort, dnsManagement] = [await freePort(), await freePort()];
  const dns = spawn('pebble-challtestsrv', ['-dns01', `127.0.0.1:${dnsPort}`, '-management', `127.0.0.1:${dnsManagement}`,
    '-http01', '', '-https01', '', '-tlsalpn01', ''], { stdio: 'ignore', detached: true });
  dns.unref();
  // An identity provider of the run's own (npm oidc-provider), whose client is this director.
  const [listenPort, oidcPort] = [await freePort(), await freePort()];
  const oidcAccounts = path.join(dataDir, 'oidc-provider.json');
  fs.writeFileSync(oidcAccounts, JSON.stringify({
    clients: [{ client_id: 'director', client_secret: 'director secret', redirect_uris: [`http://127.0.0.1:${listenPort}/auth/oidc/sso/callback`] }],
    accounts: {
      'carol-sub': { preferred_username: 'carol', name: 'Carol Client', email: 'carol@example.org', groups: ['staff'] },
    },
  }));
  const oidcSecret = path.join(dataDir, 'oidc-secret');
  fs.writeFileSync(oidcSecret, 'director secret');
  const oidc = spawn('node', [path.join(__dirname, 'oidc-provider.mjs'), String(oidcPort), oidcAccounts], { stdio: 'ignore', detached: true });
  oidc.unref();
  // A mail server of the run's own (npm maildev), which Director emails notifications through.
  const [smtpPort, mailWeb] = [await freePort(), await freePort()];
  const maildev = path.join(__dirname, '..', 'node_modules', '.bin', 'maildev');
  const mail = spawn(maildev, ['--smtp', String(smtpPort), '--web', String(mailWeb), '--ip', '127.0.0.1', '--web-ip', '127.0.0.1'],
    { stdio: 'ignore', detached: true });
  mail.unref();
  // A webhook endpoint of the run's own, which checks Director's signatures itself.
  const hooksPort = await freePort();
  const hooks = spawn('python3', [path.join(__dirname, 'webhook-receiver.py'), String(hooksPort)], { stdio: 'ignore', detached: true });
  hooks.unref();
  fs.mkdirSync(path.dirname(stateFile), { recursive: true });
  const { pid, out } = await startDirector(dataDir, namespace, ['--listen', `127.0.0.1:${listenPort}`, '--edge-listen', `127.0.0.1:${edgePort}`, '--ssh-listen', '127.0.0.1:0', '--upload-file-mb', '2', '--upload-total-mb', '4',
    '--dns-server', `127.0.0.1:${dnsPort}`,
    '--oidc-issuer', `http://127.0.0.1:${oidcPort}`, '--oidc-client-id', 'director', '--oidc-client-secret-file', oidcSecret,
    '--oidc-name', 'Test SSO', '--oidc-scopes', 'email,profile,groups', '--oidc-admin-groups', 'director-admins',
    '--oidc-approver-groups', 'staff',
    '--smtp-url', `smtp://127.0.0.1:${smtpPort}`, '--smtp-from', 'Director <director@example.org>',
    // The webhook endpoint is on this machine, where webhooks go only when the operator allows.
    '--webhook-allow', '127.0.0.1/32'], path.join(path.dirname(stateFile), 'director.log'));
  const state: ServerState = {
    pid, baseURL: out.match(/Director is running at (\S+)/)![1], setupLink: out.match(/(http\S+\/setup\?token=\S+)/)![1],
    dataDir, edgePort, namespace,
    dnsPid: dns.pid!, dnsManagement: `http://127.0.0.1:${dnsManagement}`,
    oidcPid: oidc.pid!, oidcAccounts, oidcIssuer: `http://127.0.0.1:${oidcPort}`, oidcSecret,
    mailPid: mail.pid!, mailApi: `http://127.0.0.1:${mailWeb}/api/email`,
    hooksPid: hooks.pid!, hooks: `http://127.0.0.1:${hooksPort}`,
  };
  fs.writeFileSync(stateFile, JSON.stringify(state));
}
